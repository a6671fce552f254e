//! Accounts: who may sign in and what they may do. An account has a role
//! (viewer, creator, admin) and a profile its owner edits at `/v1/me`;
//! admins list accounts, change roles and delete accounts at `/v1/users`.
//! Deleting an account deletes every video it owns.
//!
//! Credentials (passwords, tokens) are [`crate::auth`]'s; this module keeps
//! the row they are checked against, re-read on every request so a deleted
//! account or a changed role takes effect at once.
//!
//! - `model`: [`Role`], [`User`], [`Profile`] and the changes the API takes.
//! - `store`: the queries.
//! - `routes`: the handlers and [`routes()`].

mod model;
mod routes;
mod store;

pub use model::{Profile, ProfilePatch, Role, RoleChange, User, UserQuery, double_option};
pub use routes::*;
pub use store::{create, find_by_email, find_by_id, set_password};

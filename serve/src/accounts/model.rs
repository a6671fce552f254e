//! Accounts as stored and as the API shows them: roles, the stored
//! [`User`], the caller's [`Profile`] and the changes a caller or an admin
//! may ask for, with their validation.

use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::problem::FieldError;
use crate::validate;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Watches videos.
    Viewer,
    /// Also uploads and manages their own videos.
    Creator,
    /// Manages everything.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Creator => "creator",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "creator" => Ok(Self::Creator),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown role {other:?}: expected viewer, creator or admin")),
        }
    }
}

/// An account as stored.
#[derive(Debug, Clone)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Lower-cased email, unique.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// Name shown to others.
    pub display_name: String,
    /// Free text.
    pub bio: String,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    /// BCP 47 tag.
    pub language: Option<String>,
    /// http(s) URL of a picture.
    pub avatar_url: Option<String>,
    /// When the password last changed (ms); older access tokens are refused.
    pub password_changed_at: i64,
    /// Created (ms).
    pub created_at: i64,
}

/// The caller's own view of their account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Profile {
    /// Account id.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Name shown to others.
    pub display_name: String,
    /// Free text.
    pub bio: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// BCP 47 language tag.
    pub language: Option<String>,
    /// Picture URL.
    pub avatar_url: Option<String>,
    /// When the account was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<&User> for Profile {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            role: u.role,
            display_name: u.display_name.clone(),
            bio: u.bio.clone(),
            country: u.country.clone(),
            language: u.language.clone(),
            avatar_url: u.avatar_url.clone(),
            created_at: chrono::DateTime::from_timestamp_millis(u.created_at).unwrap_or_default(),
        }
    }
}

/// `Some(None)` for an explicit `null` (clear the field), `None` when the
/// field is absent (leave it alone).
pub fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A partial update of the caller's profile: absent fields stay as they
/// are, `null` clears an optional field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// 1–80 characters.
    pub display_name: Option<String>,
    /// Up to 2000 characters.
    pub bio: Option<String>,
    /// ISO 3166-1 alpha-2, such as `FR`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub country: Option<Option<String>>,
    /// BCP 47, such as `en` or `pt-BR`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub language: Option<Option<String>>,
    /// An http(s) URL.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
}

impl ProfilePatch {
    /// Every field that is wrong, and why.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(name) = &self.display_name {
            validate::text(&mut errors, "display_name", name, 1, 80);
        }
        if let Some(bio) = &self.bio {
            validate::text(&mut errors, "bio", bio, 0, 2000);
        }
        if let Some(Some(country)) = &self.country
            && !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()))
        {
            errors.push(FieldError::new(
                "country",
                "must be an ISO 3166-1 alpha-2 code such as FR",
            ));
        }
        if let Some(Some(language)) = &self.language {
            validate::language(&mut errors, "language", language);
        }
        if let Some(Some(url)) = &self.avatar_url {
            validate::http_url(&mut errors, "avatar_url", url);
        }
        errors
    }
}

/// A role change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// The new role.
    pub role: Role,
}

/// Which accounts to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct UserQuery {
    /// Only accounts whose email contains this (case-insensitive).
    pub q: Option<String>,
    /// At most this many, 1–500 (default 100), newest first.
    pub limit: Option<u32>,
}

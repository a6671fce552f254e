//! The PostgreSQL wire protocol (the `pgwire` crate): psql, drivers and
//! dashboards connect to the live views as to a read-only PostgreSQL.
//!
//! - Simple and extended query protocols; parameters (`$1`) are bound as
//!   typed values by DataFusion, never spliced into the text.
//! - Column types: `bool`, `int8`, `float8`, `text`, `timestamptz`,
//!   `text[]` (and the other Arrow types a query may produce), in text or
//!   binary as the client asks.
//! - Password authentication with Reelflow accounts (email and password,
//!   verified by an [`Authenticator`] over the accounts database); the
//!   account's role decides which rows it reads ([`crate::access`]).
//! - Logins are throttled per client address and per account, with the
//!   same limits as the HTTP login (an [`Authenticator`] refuses the try).
//! - TLS: with a certificate configured ([`PgTls`]), an `SSLRequest` is
//!   answered `S` and the session is encrypted. A password is refused over
//!   a plaintext connection from anywhere but loopback, unless the
//!   deployment says its network is trusted (`allow_plaintext_passwords`).
//! - Cancel requests stop the running statement.
//! - Session chatter clients send (`SET`, `BEGIN`, `COMMIT`, `SHOW
//!   server_version`…) is answered; psql's catalog queries (`\d`, `\dt`,
//!   `\d video_stats`) are answered by [`crate::pg_catalog`].

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::ScalarValue;
use futures::stream;
use futures::{Sink, SinkExt};
use pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    CopyEncoder, CopyTextOptions, DataRowEncoder, DescribePortalResponse, DescribeResponse, DescribeStatementResponse,
    FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::{ClientInfo, ConnectionManager, METADATA_USER, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::CopyOutResponse;
use pgwire::messages::data::{DataRow, RowDescription};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::ToSqlText;
use postgres_types::ToSql;

use crate::access::Principal;
use crate::engine::SqlEngine;
use crate::error::{SqlError, sqlstate};
use crate::pg_catalog;
use crate::subscribe::{self, Chunk, RefreshPrincipal};

/// Checks Reelflow accounts for the wire protocol.
#[async_trait]
pub trait Authenticator: Send + Sync + Debug + 'static {
    /// Whether `password` is the password of the account `user` (an email),
    /// tried from the address `client`; `Err` refuses the try without
    /// checking it (too many tries), saying when to try again.
    async fn verify(&self, user: &str, password: &str, client: &str) -> Result<bool, String>;
    /// What `user` may read, as of now.
    async fn principal(&self, user: &str) -> Result<Principal, String>;
}

/// The version announced to clients: psql adapts its catalog queries to it.
pub const SERVER_VERSION: &str = "15.0 (Reelflow)";

#[derive(Debug)]
struct Accounts(Arc<dyn Authenticator>);

#[async_trait]
impl AuthSource for Accounts {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        Err(PgWireError::ApiError("passwords are verified, never read".into()))
    }

    async fn verify_password(&self, login: &LoginInfo, presented: &[u8]) -> PgWireResult<Option<()>> {
        let user = login.user().unwrap_or_default().to_string();
        let password = String::from_utf8_lossy(presented);
        let password = password.trim_end_matches('\0');
        // The client's address (its IP, no port).
        match self.0.verify(&user, password, login.host()).await {
            Ok(true) => Ok(None),
            Ok(false) => Err(PgWireError::InvalidPassword(user)),
            Err(why) => Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                TOO_MANY_LOGINS.into(),
                why,
            )))),
        }
    }
}

/// SQLSTATE of a refused login try (PostgreSQL's too_many_connections
/// class: the server declines to take more from this client now).
const TOO_MANY_LOGINS: &str = "53300";

/// TLS for the wire protocol, and whether passwords may cross plaintext
/// connections from other hosts.
#[derive(Clone, Default)]
pub struct PgTls {
    /// Accepts TLS sessions, when a certificate is configured.
    pub acceptor: Option<pgwire::tokio::TlsAcceptor>,
    /// Whether a password may be sent over a plaintext connection from a
    /// host other than this one (a trusted network, a TLS-terminating
    /// proxy).
    pub allow_plaintext_passwords: bool,
}

impl Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTls")
            .field("tls", &self.acceptor.is_some())
            .field("allow_plaintext_passwords", &self.allow_plaintext_passwords)
            .finish()
    }
}

impl PgTls {
    /// TLS with the PEM certificate chain at `cert` and private key at `key`.
    pub fn from_pem_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, String> {
        use pgwire::tokio::tokio_rustls::rustls;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("reading the TLS certificate {}: {e}", cert.display()))?;
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate", cert.display()));
        }
        let key =
            PrivateKeyDer::from_pem_file(key).map_err(|e| format!("reading the TLS key {}: {e}", key.display()))?;
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .map_err(|e| format!("TLS certificate and key do not work together: {e}"))?;
        // PostgreSQL 17's direct TLS negotiation names this protocol.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Self {
            acceptor: Some(pgwire::tokio::TlsAcceptor::from(Arc::new(config))),
            allow_plaintext_passwords: false,
        })
    }
}

/// Whether a client at `peer` may send its password over a connection that
/// is `secure` or not.
pub fn password_allowed(peer: std::net::IpAddr, secure: bool, allow_plaintext: bool) -> bool {
    secure || allow_plaintext || peer.is_loopback()
}

/// The password handshake, refused before it starts over a plaintext
/// connection from another host (the password would cross the network in
/// the clear).
struct Startup {
    inner: CleartextPasswordAuthStartupHandler<Accounts, DefaultServerParameterProvider>,
    tls_configured: bool,
    allow_plaintext: bool,
}

#[async_trait]
impl pgwire::api::auth::StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if matches!(message, PgWireFrontendMessage::Startup(_))
            && !password_allowed(client.socket_addr().ip(), client.is_secure(), self.allow_plaintext)
        {
            let how = if self.tls_configured {
                "connect with TLS (sslmode=require)"
            } else {
                "the server has no TLS certificate (sql.tls_cert, sql.tls_key); ask its operator"
            };
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28000".into(),
                format!("passwords are not accepted over a plaintext connection from another host: {how}"),
            ))));
        }
        self.inner.on_startup(client, message).await
    }
}

/// A caller's principal, refreshed now and then (a creator's new videos
/// show up within [`PRINCIPAL_TTL`]).
struct CachedPrincipal {
    principal: Principal,
    at: Instant,
}

const PRINCIPAL_TTL: Duration = Duration::from_secs(10);

/// The query handlers of every connection.
#[derive(Debug)]
pub struct Backend {
    engine: SqlEngine,
    auth: Arc<dyn Authenticator>,
    parser: Arc<Parser>,
}

/// Everything `process_socket` needs.
pub struct PgServer {
    backend: Arc<Backend>,
    startup: Arc<Startup>,
    cancel: Arc<DefaultCancelHandler>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
}

impl Debug for PgServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgServer").field("backend", &self.backend).finish()
    }
}

impl PgServer {
    /// A server answering from `engine`, with accounts from `auth`, without
    /// TLS (passwords from loopback only).
    pub fn new(engine: SqlEngine, auth: Arc<dyn Authenticator>) -> Arc<Self> {
        Self::with_tls(engine, auth, PgTls::default())
    }

    /// A server answering from `engine`, with accounts from `auth`, with
    /// `tls`.
    pub fn with_tls(engine: SqlEngine, auth: Arc<dyn Authenticator>, tls: PgTls) -> Arc<Self> {
        let manager = Arc::new(ConnectionManager::new());
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = SERVER_VERSION.into();
        let startup = CleartextPasswordAuthStartupHandler::new(Accounts(Arc::clone(&auth)), parameters)
            .with_connection_manager(Arc::clone(&manager));
        Arc::new(Self {
            backend: Arc::new(Backend {
                parser: Arc::new(Parser { engine: engine.clone() }),
                engine,
                auth,
            }),
            startup: Arc::new(Startup {
                inner: startup,
                tls_configured: tls.acceptor.is_some(),
                allow_plaintext: tls.allow_plaintext_passwords,
            }),
            cancel: Arc::new(DefaultCancelHandler::new(manager)),
            tls: tls.acceptor,
        })
    }

    /// Serves connections from `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) {
        loop {
            match listener.accept().await {
                Ok((socket, _)) => {
                    let server = Arc::clone(&self);
                    tokio::spawn(async move {
                        let tls = server.tls.clone();
                        if let Err(e) = pgwire::tokio::process_socket(socket, tls, server).await {
                            tracing::debug!(error = %e, "a pgwire connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a pgwire connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl PgWireServerHandlers for PgServer {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.backend)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.backend)
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

/// A wire error for `e`, with its SQLSTATE, position and hint.
pub fn wire_error(e: &SqlError) -> PgWireError {
    let mut info = ErrorInfo::new("ERROR".to_owned(), e.code.to_owned(), e.message.clone());
    info.hint = e.hint.clone();
    info.position = e.position.map(|p| p.to_string());
    PgWireError::UserError(Box::new(info))
}

/// The PostgreSQL type of an Arrow type.
pub fn pg_type(ty: &DataType) -> Type {
    match ty {
        DataType::Boolean => Type::BOOL,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::List(f) | DataType::LargeList(f) => match f.data_type() {
            DataType::Int64 => Type::INT8_ARRAY,
            DataType::Float64 => Type::FLOAT8_ARRAY,
            DataType::Boolean => Type::BOOL_ARRAY,
            _ => Type::TEXT_ARRAY,
        },
        _ => Type::TEXT,
    }
}

/// The Arrow type a parameter of PostgreSQL type `ty` binds as.
fn arrow_of(ty: &Type) -> DataType {
    match *ty {
        Type::BOOL => DataType::Boolean,
        Type::INT2 | Type::INT4 | Type::INT8 => DataType::Int64,
        Type::FLOAT4 | Type::FLOAT8 | Type::NUMERIC => DataType::Float64,
        _ => DataType::Utf8,
    }
}

fn fields(schema: &SchemaRef, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            FieldInfo::new(
                f.name().clone(),
                None,
                None,
                pg_type(f.data_type()),
                format.format_for(i),
            )
        })
        .collect()
}

/// Writes fields of a row: a data row, or a line of `COPY … TO STDOUT`.
trait FieldEncoder {
    fn encode_field<T: ToSql + ToSqlText + Sized>(&mut self, value: &T) -> PgWireResult<()>;
}

impl FieldEncoder for DataRowEncoder {
    fn encode_field<T: ToSql + ToSqlText + Sized>(&mut self, value: &T) -> PgWireResult<()> {
        DataRowEncoder::encode_field(self, value)
    }
}

impl FieldEncoder for CopyEncoder {
    fn encode_field<T: ToSql + ToSqlText + Sized>(&mut self, value: &T) -> PgWireResult<()> {
        CopyEncoder::encode_field(self, value)
    }
}

fn encode_cell<E: FieldEncoder>(enc: &mut E, array: &ArrayRef, row: usize, ty: &Type) -> PgWireResult<()> {
    let null = array.is_null(row);
    macro_rules! opt {
        ($v:expr) => {
            if null { None } else { Some($v) }
        };
    }
    match (array.data_type(), ty) {
        (DataType::Boolean, _) => enc.encode_field(&opt!(array.as_boolean().value(row))),
        (DataType::Int64, _) => enc.encode_field(&opt!(array.as_primitive::<Int64Type>().value(row))),
        (DataType::Int32, _) => enc.encode_field(&opt!(array.as_primitive::<Int32Type>().value(row))),
        (DataType::Int16, _) => enc.encode_field(&opt!(array.as_primitive::<Int16Type>().value(row))),
        // Unsigned and one-byte integers travel as the next wider signed
        // type they are described as (`pg_type`), in binary as in text.
        (DataType::Int8, _) => enc.encode_field(&opt!(i16::from(array.as_primitive::<Int8Type>().value(row)))),
        (DataType::UInt8, _) => enc.encode_field(&opt!(i16::from(array.as_primitive::<UInt8Type>().value(row)))),
        (DataType::UInt16, _) => enc.encode_field(&opt!(i32::from(array.as_primitive::<UInt16Type>().value(row)))),
        (DataType::UInt32, _) => enc.encode_field(&opt!(i64::from(array.as_primitive::<UInt32Type>().value(row)))),
        (DataType::UInt64, _) => {
            let value = opt!(array.as_primitive::<UInt64Type>().value(row));
            let value = value.map(i64::try_from).transpose().map_err(|_| {
                wire_error(&SqlError::new(
                    sqlstate::OUT_OF_RANGE,
                    "a value is above the largest bigint (int8) the wire protocol can carry",
                ))
            })?;
            enc.encode_field(&value)
        }
        (DataType::Float64, _) => enc.encode_field(&opt!(Float8(array.as_primitive::<Float64Type>().value(row)))),
        (DataType::Float32, _) => enc.encode_field(&opt!(array.as_primitive::<Float32Type>().value(row))),
        (DataType::Timestamp(unit, tz), _) => {
            let ms = opt!(crate::http::timestamp_ms(array, row, *unit));
            let at = ms.and_then(DateTime::<Utc>::from_timestamp_millis);
            if tz.is_some() {
                enc.encode_field(&at)
            } else {
                enc.encode_field(&at.map(|t| t.naive_utc()) as &Option<NaiveDateTime>)
            }
        }
        (DataType::List(_), t) if *t == Type::TEXT_ARRAY => {
            let items: Option<Vec<Option<String>>> = opt!({
                let list = array.as_list::<i32>().value(row);
                (0..list.len()).map(|i| text_of(&list, i)).collect()
            });
            enc.encode_field(&items)
        }
        (DataType::List(_), t) if *t == Type::INT8_ARRAY => {
            let items: Option<Vec<Option<i64>>> = opt!({
                let list = array.as_list::<i32>().value(row);
                let ints = list.as_primitive::<Int64Type>();
                (0..list.len())
                    .map(|i| (!ints.is_null(i)).then(|| ints.value(i)))
                    .collect()
            });
            enc.encode_field(&items)
        }
        (DataType::List(_), t) if *t == Type::FLOAT8_ARRAY => {
            let items: Option<Vec<Option<f64>>> = opt!({
                let list = array.as_list::<i32>().value(row);
                let floats = list.as_primitive::<Float64Type>();
                (0..list.len())
                    .map(|i| (!floats.is_null(i)).then(|| floats.value(i)))
                    .collect()
            });
            enc.encode_field(&items)
        }
        (DataType::List(_), t) if *t == Type::BOOL_ARRAY => {
            let items: Option<Vec<Option<bool>>> = opt!({
                let list = array.as_list::<i32>().value(row);
                let bools = list.as_boolean();
                (0..list.len())
                    .map(|i| (!bools.is_null(i)).then(|| bools.value(i)))
                    .collect()
            });
            enc.encode_field(&items)
        }
        _ => enc.encode_field(&text_of(array, row)),
    }
}

/// A `float8` that prints as PostgreSQL prints one: the shortest text that
/// reads back as the same number, `10` rather than `10.0`, exponents from
/// 1e15 and below 1e-4 (`1e+20`, `1.5e-05`), `NaN` and `Infinity`.
#[derive(Debug, Clone, Copy)]
struct Float8(f64);

impl Float8 {
    fn text(self) -> String {
        let v = self.0;
        if v.is_nan() {
            return "NaN".into();
        }
        if v.is_infinite() {
            return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
        }
        if v == 0.0 {
            return if v.is_sign_negative() { "-0" } else { "0" }.into();
        }
        // The exponent of the shortest decimal form (`{:e}`, as `1.5e-5`)
        // decides the notation, as in PostgreSQL.
        let scientific = format!("{v:e}");
        let (mantissa, exp) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        if (-4..15).contains(&exp) {
            return format!("{v}");
        }
        format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

impl ToSql for Float8 {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        self.0.to_sql(ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <f64 as ToSql>::accepts(ty)
    }

    postgres_types::to_sql_checked!();
}

impl ToSqlText for Float8 {
    fn to_sql_text(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
        _format: &pgwire::types::format::FormatOptions,
    ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.text().as_bytes());
        Ok(postgres_types::IsNull::No)
    }
}

/// A cell as text, as PostgreSQL would print it.
fn text_of(array: &ArrayRef, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Some(array.as_string_view().value(row).to_string()),
        DataType::Float64 => Some(Float8(array.as_primitive::<Float64Type>().value(row)).text()),
        _ => ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
            .ok()
            .map(|f| f.value(row).to_string()),
    }
}

fn rows(batches: Vec<RecordBatch>, fields: Arc<Vec<FieldInfo>>) -> Vec<PgWireResult<DataRow>> {
    let mut out = Vec::new();
    let mut enc = DataRowEncoder::new(Arc::clone(&fields));
    for b in &batches {
        for r in 0..b.num_rows() {
            let mut result = Ok(());
            for (c, f) in b.columns().iter().zip(fields.iter()) {
                result = encode_cell(&mut enc, c, r, f.datatype());
                if result.is_err() {
                    break;
                }
            }
            out.push(result.map(|()| enc.take_row()));
        }
    }
    out
}

/// What kind of statement `sql` is, for the ones answered without the
/// engine.
enum Chatter {
    Set,
    Begin,
    Commit,
    Rollback,
    Show(&'static str, String),
}

fn chatter(sql: &str) -> Option<Chatter> {
    let lower = sql.trim().trim_end_matches(';').trim().to_ascii_lowercase();
    let first = lower.split_whitespace().next().unwrap_or("");
    match first {
        "set" | "reset" | "discard" | "deallocate" => Some(Chatter::Set),
        "begin" | "start" => Some(Chatter::Begin),
        "commit" | "end" => Some(Chatter::Commit),
        "rollback" | "abort" => Some(Chatter::Rollback),
        "show" => {
            let name = lower.trim_start_matches("show").trim();
            let value = match name {
                "server_version" => SERVER_VERSION.to_string(),
                "server_version_num" => "150000".into(),
                "timezone" | "time zone" => "UTC".into(),
                "standard_conforming_strings" => "on".into(),
                "client_encoding" | "server_encoding" => "UTF8".into(),
                "search_path" => "public".into(),
                "transaction_isolation" | "transaction isolation level" => "serializable".into(),
                "transaction_read_only" => "on".into(),
                "datestyle" => "ISO, MDY".into(),
                "max_identifier_length" => "63".into(),
                _ => return None,
            };
            let column: &'static str = match name {
                "server_version" => "server_version",
                "server_version_num" => "server_version_num",
                "timezone" | "time zone" => "TimeZone",
                "standard_conforming_strings" => "standard_conforming_strings",
                "client_encoding" => "client_encoding",
                "server_encoding" => "server_encoding",
                "search_path" => "search_path",
                "transaction_read_only" => "transaction_read_only",
                "datestyle" => "DateStyle",
                "max_identifier_length" => "max_identifier_length",
                _ => "transaction_isolation",
            };
            Some(Chatter::Show(column, value))
        }
        _ => None,
    }
}

/// A result of text columns.
pub fn text_response(columns: &[&str], values: Vec<Vec<Option<String>>>) -> Response {
    let fields: Arc<Vec<FieldInfo>> = Arc::new(
        columns
            .iter()
            .map(|c| FieldInfo::new((*c).to_string(), None, None, Type::TEXT, FieldFormat::Text))
            .collect(),
    );
    let mut enc = DataRowEncoder::new(Arc::clone(&fields));
    let rows: Vec<PgWireResult<DataRow>> = values
        .into_iter()
        .map(|row| {
            for v in &row {
                enc.encode_field(v)?;
            }
            Ok(enc.take_row())
        })
        .collect();
    Response::Query(QueryResponse::new(fields, stream::iter(rows)))
}

impl Backend {
    async fn principal<C: ClientInfo>(&self, client: &C) -> PgWireResult<Principal> {
        let ext = client.session_extensions();
        if let Some(cached) = ext.get::<CachedPrincipal>()
            && cached.at.elapsed() < PRINCIPAL_TTL
        {
            return Ok(cached.principal.clone());
        }
        let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
        let principal = self
            .auth
            .principal(&user)
            .await
            .map_err(|e| wire_error(&SqlError::new(sqlstate::INVALID_PASSWORD, e)))?;
        ext.insert(CachedPrincipal {
            principal: principal.clone(),
            at: Instant::now(),
        });
        Ok(principal)
    }

    /// Runs one statement.
    async fn run<C: ClientInfo>(
        &self,
        client: &C,
        sql: &str,
        params: Vec<ScalarValue>,
        format: &Format,
    ) -> PgWireResult<Response> {
        if sql.trim().trim_end_matches(';').trim().is_empty() {
            return Ok(Response::EmptyQuery);
        }
        match chatter(sql) {
            Some(Chatter::Set) => return Ok(Response::Execution(Tag::new("SET"))),
            Some(Chatter::Begin) => return Ok(Response::TransactionStart(Tag::new("BEGIN"))),
            Some(Chatter::Commit) => return Ok(Response::TransactionEnd(Tag::new("COMMIT"))),
            Some(Chatter::Rollback) => return Ok(Response::TransactionEnd(Tag::new("ROLLBACK"))),
            Some(Chatter::Show(column, value)) => return Ok(text_response(&[column], vec![vec![Some(value)]])),
            None => {}
        }
        let principal = self.principal(client).await?;
        if let Some(answer) = pg_catalog::answer(sql, &principal) {
            let columns: Vec<&str> = answer.columns.iter().map(String::as_str).collect();
            return Ok(text_response(&columns, answer.rows));
        }
        let out = self
            .engine
            .query_with_params(sql, params, principal)
            .await
            .map_err(|e| wire_error(&e))?;
        let fields = Arc::new(fields(&out.schema, format));
        let rows = rows(out.batches, Arc::clone(&fields));
        Ok(Response::Query(QueryResponse::new(fields, stream::iter(rows))))
    }
}

#[async_trait]
impl SimpleQueryHandler for Backend {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = crate::split::statements(query);
        if let Some(stream) = statements.iter().find_map(|s| Streamed::of(s)) {
            if statements.len() > 1 {
                return Err(wire_error(
                    &SqlError::new(
                        sqlstate::NOT_SUPPORTED,
                        "SUBSCRIBE must be sent on its own, not with other statements",
                    )
                    .with_hint("send the other statements in a query of their own"),
                ));
            }
            return Err(self.stream(client, stream, &Format::UnifiedText, true).await);
        }
        let mut out = Vec::new();
        for statement in statements {
            out.push(self.run(client, &statement, Vec::new(), &Format::UnifiedText).await?);
        }
        if out.is_empty() {
            out.push(Response::EmptyQuery);
        }
        Ok(out)
    }
}

/// Reads parameter `i` of `portal` as the Arrow type it binds as.
fn parameter(portal: &Portal<Prepared>, i: usize, ty: &Type) -> PgWireResult<ScalarValue> {
    Ok(match arrow_of(ty) {
        DataType::Boolean => ScalarValue::Boolean(portal.parameter::<bool>(i, &Type::BOOL)?),
        DataType::Int64 => match *ty {
            Type::INT2 => ScalarValue::Int64(portal.parameter::<i16>(i, ty)?.map(i64::from)),
            Type::INT4 => ScalarValue::Int64(portal.parameter::<i32>(i, ty)?.map(i64::from)),
            _ => ScalarValue::Int64(portal.parameter::<i64>(i, &Type::INT8)?),
        },
        DataType::Float64 => match *ty {
            Type::FLOAT4 => ScalarValue::Float64(portal.parameter::<f32>(i, ty)?.map(f64::from)),
            _ => ScalarValue::Float64(portal.parameter::<f64>(i, &Type::FLOAT8)?),
        },
        _ => ScalarValue::Utf8(portal.parameter::<String>(i, &Type::TEXT)?),
    })
}

/// A prepared statement: its text and its parameters' types, worked out
/// once when the client prepares it rather than on every execution.
#[derive(Debug, Clone)]
pub struct Prepared {
    sql: String,
    params: Vec<Type>,
}

/// Prepares statements for the extended protocol.
#[derive(Debug)]
pub struct Parser {
    engine: SqlEngine,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(&self, _client: &C, sql: &str, declared: &[Option<Type>]) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        if sql.trim().is_empty() {
            return Ok(None);
        }
        // Inference only plans the statement, reading no table, so the
        // caller's rights do not matter here; they apply when it runs.
        let inferred = if chatter(sql).is_some()
            || Streamed::of(sql).is_some()
            || pg_catalog::answer(sql, &Principal::Admin).is_some()
        {
            Vec::new()
        } else {
            self.engine
                .parameter_types(sql, Principal::Admin)
                .await
                .map_err(|e| wire_error(&e))?
        };
        // What the client declared, else what DataFusion infers, else text.
        let n = inferred.len().max(declared.len());
        let params = (0..n)
            .map(|i| {
                declared
                    .get(i)
                    .cloned()
                    .flatten()
                    .filter(|t| *t != Type::UNKNOWN)
                    .or_else(|| inferred.get(i).cloned().flatten().map(|t| pg_type(&t)))
                    .unwrap_or(Type::TEXT)
            })
            .collect();
        Ok(Some(Prepared {
            sql: sql.to_string(),
            params,
        }))
    }

    fn get_parameter_types(&self, statement: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(statement.params.clone())
    }

    fn get_result_schema(&self, _statement: &Prepared, _format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        // Answered by the describe handlers, which plan the statement.
        Ok(Vec::new())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Backend {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        if let Some(stream) = Streamed::of(&prepared.sql) {
            // The client learnt the columns from Describe.
            return Err(self.stream(client, stream, &portal.result_column_format, false).await);
        }
        let mut params = Vec::with_capacity(portal.parameter_len());
        for i in 0..portal.parameter_len() {
            let ty = prepared.params.get(i).cloned().unwrap_or(Type::TEXT);
            params.push(parameter(portal, i, &ty)?);
        }
        self.run(client, &prepared.sql, params, &portal.result_column_format)
            .await
    }

    async fn do_describe_statement<C>(
        &self,
        client: &mut C,
        target: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let fields = self
            .result_fields(client, &target.statement.sql, &Format::UnifiedText)
            .await?;
        Ok(DescribeStatementResponse::new(target.statement.params.clone(), fields))
    }

    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        target: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let fields = self
            .result_fields(client, &target.statement.statement.sql, &target.result_column_format)
            .await?;
        if fields.is_empty() {
            return Ok(DescribePortalResponse::no_data());
        }
        Ok(DescribePortalResponse::new(fields))
    }
}

/// A statement whose answer streams until the client goes.
#[derive(Debug, Clone, Copy)]
enum Streamed<'a> {
    /// `SUBSCRIBE …`, answered as rows.
    Rows(&'a str),
    /// `COPY (SUBSCRIBE …) TO STDOUT`, answered as lines of COPY text,
    /// which psql prints as they come.
    Copy(&'a str),
}

impl<'a> Streamed<'a> {
    fn of(sql: &'a str) -> Option<Self> {
        if subscribe::target(sql).is_some() {
            return Some(Streamed::Rows(sql));
        }
        copy_subscribe(sql).map(Streamed::Copy)
    }

    fn sql(self) -> &'a str {
        match self {
            Streamed::Rows(s) | Streamed::Copy(s) => s,
        }
    }
}

/// The `SUBSCRIBE` of `COPY (SUBSCRIBE …) TO STDOUT`, if `sql` is one.
fn copy_subscribe(sql: &str) -> Option<&str> {
    let trimmed = sql.trim().trim_end_matches(';').trim_end();
    if !trimmed.get(..4)?.eq_ignore_ascii_case("copy") {
        return None;
    }
    let rest = trimmed[4..].trim_start().strip_prefix('(')?;
    let close = rest.rfind(')')?;
    let tail = rest[close + 1..].trim().to_ascii_lowercase();
    let tail: Vec<&str> = tail.split_whitespace().collect();
    if tail.get(..2) != Some(&["to", "stdout"][..]) {
        return None;
    }
    let inner = rest[..close].trim();
    subscribe::target(inner).map(|_| inner)
}

impl Backend {
    /// Runs a subscription, sending its changes to `client` as they come;
    /// returns the error that ended it (its consumer too slow, the
    /// dataflows shutting down, the client gone).
    async fn stream<C>(&self, client: &mut C, streamed: Streamed<'_>, format: &Format, describe: bool) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self.try_stream(client, streamed, format, describe).await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn try_stream<C>(
        &self,
        client: &mut C,
        streamed: Streamed<'_>,
        format: &Format,
        describe: bool,
    ) -> PgWireResult<std::convert::Infallible>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let principal = self.principal(client).await?;
        let user = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
        let auth = Arc::clone(&self.auth);
        let refresh: RefreshPrincipal = Arc::new(move || {
            let (auth, user) = (Arc::clone(&auth), user.clone());
            Box::pin(async move { auth.principal(&user).await })
        });
        let mut sub = self
            .engine
            .subscribe(streamed.sql(), principal, Some(refresh))
            .await
            .map_err(|e| wire_error(&e))?;
        let copy = matches!(streamed, Streamed::Copy(_));
        let fields = Arc::new(fields(&sub.schema, if copy { &Format::UnifiedText } else { format }));
        if copy {
            let n = fields.len();
            client
                .send(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
                    0,
                    n as i16,
                    vec![0; n],
                )))
                .await?;
        } else if describe {
            let description = RowDescription::new(fields.iter().map(Into::into).collect());
            client.send(PgWireBackendMessage::RowDescription(description)).await?;
        }
        loop {
            let batch = match sub.next().await {
                Some(Ok(Chunk::Changes(batch))) => batch,
                Some(Ok(Chunk::Progress(t))) => subscribe::progress_row(&sub.schema, t).map_err(|e| wire_error(&e))?,
                Some(Err(e)) => return Err(wire_error(&e)),
                None => return Err(wire_error(&SqlError::new(sqlstate::CANCELED, "the subscription ended"))),
            };
            if copy {
                let mut enc = CopyEncoder::new_text(Arc::clone(&fields), CopyTextOptions::default());
                for r in 0..batch.num_rows() {
                    for (c, f) in batch.columns().iter().zip(fields.iter()) {
                        encode_cell(&mut enc, c, r, f.datatype())?;
                    }
                    client.feed(PgWireBackendMessage::CopyData(enc.take_copy())).await?;
                }
            } else {
                for row in rows(vec![batch], Arc::clone(&fields)) {
                    client.feed(PgWireBackendMessage::DataRow(row?)).await?;
                }
            }
            client.flush().await?;
        }
    }

    /// The columns a statement answers with.
    async fn result_fields<C: ClientInfo>(
        &self,
        client: &C,
        sql: &str,
        format: &Format,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match chatter(sql) {
            Some(Chatter::Show(column, _)) => {
                return Ok(vec![FieldInfo::new(
                    column.into(),
                    None,
                    None,
                    Type::TEXT,
                    format.format_for(0),
                )]);
            }
            Some(_) => return Ok(Vec::new()),
            None => {}
        }
        let principal = self.principal(client).await?;
        if copy_subscribe(sql).is_some() {
            // COPY answers with CopyOutResponse, not rows.
            return Ok(Vec::new());
        }
        if let Some(answer) = pg_catalog::answer(sql, &principal) {
            return Ok(answer
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| FieldInfo::new((*c).to_string(), None, None, Type::TEXT, format.format_for(i)))
                .collect());
        }
        if sql.trim().is_empty() {
            return Ok(Vec::new());
        }
        let schema = self.engine.describe(sql, principal).await.map_err(|e| wire_error(&e))?;
        Ok(fields(&schema, format))
    }
}

#[cfg(test)]
mod tests {
    use super::Float8;

    /// Security finding 7: passwords crossed the network in the clear.
    #[test]
    fn regression_passwords_need_tls_from_other_hosts() {
        use super::password_allowed;
        let remote: std::net::IpAddr = "10.1.2.3".parse().expect("ip");
        let loopback: std::net::IpAddr = "127.0.0.1".parse().expect("ip");
        let loopback6: std::net::IpAddr = "::1".parse().expect("ip");
        assert!(!password_allowed(remote, false, false), "plaintext from another host");
        assert!(password_allowed(remote, true, false), "TLS from another host");
        assert!(
            password_allowed(remote, false, true),
            "a trusted network, as configured"
        );
        assert!(password_allowed(loopback, false, false));
        assert!(password_allowed(loopback6, false, false));
    }

    #[test]
    fn float8_prints_as_postgresql_prints_it() {
        for (v, text) in [
            (10.0, "10"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1.0 / 3.0, "0.3333333333333333"),
            (1e20, "1e+20"),
            (1.5e-5, "1.5e-05"),
            (123456789012345.0, "123456789012345"),
            (1e15, "1e+15"),
            (0.0001, "0.0001"),
            (999999999999999.9, "999999999999999.9"),
            (9.999999999999999e-5, "9.999999999999999e-05"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (0.0, "0"),
        ] {
            assert_eq!(Float8(v).text(), text, "{v}");
        }
    }
}

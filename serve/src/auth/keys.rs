//! The signing keys of access tokens (and, later, playback tokens): HS256
//! keys that each carry a `kid`, kept in a JSON file readable only by its
//! owner.
//!
//! The first key of the file signs; every key in it verifies. Rotation
//! (`reelflow auth rotate-key`, then a restart) puts a new key first and
//! keeps the old one, so tokens it signed stay valid until they expire; a
//! key is dropped once its successor is older than the longest token
//! lifetime. A token whose `kid` is not in the ring is refused.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand_08::RngCore;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// 32 random bytes, base64url.
    secret: String,
    /// Unix milliseconds.
    created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct KeyFile {
    keys: Vec<StoredKey>,
}

/// Why a token was refused. The messages are safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or a JWT with an algorithm other than HS256 (`none`
    /// included).
    #[error("the token is malformed or uses an unsupported algorithm")]
    Malformed,
    /// The header names no key id.
    #[error("the token has no key id")]
    MissingKid,
    /// The key id is not one of ours (any more).
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    /// The signature does not match.
    #[error("the token's signature is invalid")]
    BadSignature,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
    /// Meant for another audience (a playback token used on the API…).
    #[error("the token is not valid for this audience")]
    WrongAudience,
}

/// The keys, ready to sign and verify.
pub struct Keyring {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("signing_kid", &self.signing_kid)
            .field("kids", &self.verifying.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn new_key() -> StoredKey {
    let mut secret = [0u8; 32];
    rand_08::rngs::OsRng.fill_bytes(&mut secret);
    let now = chrono::Utc::now();
    StoredKey {
        // Time first, so kids sort by age; random after, so two keys made
        // in the same millisecond still differ.
        kid: format!("k{}-{:08x}", now.format("%Y%m%d%H%M%S%3f"), rand_08::random::<u32>()),
        secret: URL_SAFE_NO_PAD.encode(secret),
        created_at: now.timestamp_millis(),
    }
}

fn write_key_file(path: &Path, file: &KeyFile) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(file)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn read_key_file(path: &Path) -> anyhow::Result<Option<KeyFile>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let file: KeyFile = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a valid key file", path.display()))?;
            Ok(Some(file))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

impl Keyring {
    /// Loads the key file, creating it with one fresh key if it is missing.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        let file = match read_key_file(path)? {
            Some(file) => file,
            None => {
                let file = KeyFile { keys: vec![new_key()] };
                write_key_file(path, &file)?;
                tracing::info!(path = %path.display(), "created a new token signing key");
                file
            }
        };
        Self::from_file(file).with_context(|| format!("loading keys from {}", path.display()))
    }

    /// Adds a new signing key to the file and drops keys no token can still
    /// need; returns the new key's id.
    pub fn rotate(path: &Path, longest_token_lifetime: Duration) -> anyhow::Result<String> {
        let mut file = read_key_file(path)?.unwrap_or_default();
        let key = new_key();
        let kid = key.kid.clone();
        let now = key.created_at;
        file.keys.insert(0, key);
        // Keep a key while a token it signed may be alive: until its
        // successor has been signing for a whole token lifetime.
        let keep_ms = longest_token_lifetime.as_millis() as i64;
        let mut kept = vec![file.keys[0].clone()];
        for pair in file.keys.windows(2) {
            if now - pair[0].created_at < keep_ms {
                kept.push(pair[1].clone());
            }
        }
        file.keys = kept;
        write_key_file(path, &file)?;
        Ok(kid)
    }

    fn from_file(file: KeyFile) -> anyhow::Result<Self> {
        let Some(first) = file.keys.first() else {
            bail!("the key file holds no keys")
        };
        let mut verifying = HashMap::new();
        let mut signing = None;
        for k in &file.keys {
            let secret = URL_SAFE_NO_PAD
                .decode(&k.secret)
                .with_context(|| format!("key {} is not base64url", k.kid))?;
            if secret.len() < 32 {
                bail!("key {} is shorter than 32 bytes", k.kid);
            }
            if signing.is_none() {
                signing = Some(EncodingKey::from_secret(&secret));
            }
            verifying.insert(k.kid.clone(), DecodingKey::from_secret(&secret));
        }
        Ok(Self {
            signing_kid: first.kid.clone(),
            signing: signing.expect("at least one key"),
            verifying,
        })
    }

    /// The id of the key that signs.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// Signs `claims` with the current key.
    pub fn sign<C: Serialize>(&self, claims: &C) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.signing).expect("HS256 signing cannot fail")
    }

    /// Verifies a token meant for `audience` and returns its claims.
    pub fn verify<C: DeserializeOwned>(&self, token: &str, audience: &str) -> Result<C, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Malformed);
        }
        let kid = header.kid.ok_or(TokenError::MissingKid)?;
        let key = self.verifying.get(&kid).ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        // Clocks of one deployment agree to within a few seconds.
        validation.leeway = 5;
        jsonwebtoken::decode::<C>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::ExpiredSignature => TokenError::Expired,
                    K::InvalidSignature => TokenError::BadSignature,
                    K::InvalidAudience => TokenError::WrongAudience,
                    _ => TokenError::Malformed,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Claims {
        sub: String,
        aud: String,
        exp: i64,
    }

    fn claims(exp_in: i64) -> Claims {
        Claims {
            sub: "u1".into(),
            aud: "api".into(),
            exp: chrono::Utc::now().timestamp() + exp_in,
        }
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.json");
        let old = Keyring::load_or_create(&path).expect("create");
        // Made once: two calls a second boundary apart differ in `exp`.
        let signed = claims(600);
        let old_token = old.sign(&signed);
        std::thread::sleep(Duration::from_millis(5));
        let new_kid = Keyring::rotate(&path, Duration::from_secs(900)).expect("rotate");
        let ring = Keyring::load_or_create(&path).expect("reload");
        assert_eq!(ring.signing_kid(), new_kid);
        assert_ne!(new_kid, old.signing_kid());
        assert_eq!(
            ring.verify::<Claims>(&old_token, "api")
                .expect("old token still verifies"),
            signed
        );
        let new_token = ring.sign(&claims(600));
        assert!(new_token.split('.').next().is_some());
        assert_eq!(old.verify::<Claims>(&new_token, "api"), Err(TokenError::UnknownKey));

        // Rotating again with a zero lifetime drops every older key.
        Keyring::rotate(&path, Duration::ZERO).expect("rotate");
        let ring = Keyring::load_or_create(&path).expect("reload");
        assert_eq!(ring.verify::<Claims>(&old_token, "api"), Err(TokenError::UnknownKey));
    }

    #[test]
    fn refuses_expired_wrong_audience_and_forged_tokens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = Keyring::load_or_create(&dir.path().join("k.json")).expect("create");
        assert_eq!(
            ring.verify::<Claims>(&ring.sign(&claims(-60)), "api"),
            Err(TokenError::Expired)
        );
        assert_eq!(
            ring.verify::<Claims>(&ring.sign(&claims(60)), "playback"),
            Err(TokenError::WrongAudience)
        );
        let token = ring.sign(&claims(60));
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged_sig = URL_SAFE_NO_PAD.encode([7u8; 32]);
        parts[2] = &forged_sig;
        assert_eq!(
            ring.verify::<Claims>(&parts.join("."), "api"),
            Err(TokenError::BadSignature)
        );
        // alg: none, with the same claims and no signature.
        let none_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
            ring.signing_kid()
        ));
        let none_token = format!("{none_header}.{}.", parts[1]);
        assert_eq!(ring.verify::<Claims>(&none_token, "api"), Err(TokenError::Malformed));
        let path = dir.path().join("k.json");
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).expect("stat").permissions());
        assert_eq!(mode & 0o777, 0o600, "the key file must be private");
    }
}

//! Field checks shared by the request types. Each pushes a
//! [`FieldError`] naming the field and saying what would be acceptable, so
//! a client sees every problem of a request at once.

use crate::problem::FieldError;

/// Trimmed length between `min` and `max` characters, no control characters
/// other than newlines and tabs.
pub fn text(errors: &mut Vec<FieldError>, field: &str, value: &str, min: usize, max: usize) {
    let len = value.trim().chars().count();
    if len < min {
        errors.push(FieldError::new(
            field,
            if min == 1 {
                "must not be empty".to_string()
            } else {
                format!("must be at least {min} characters")
            },
        ));
    } else if len > max {
        errors.push(FieldError::new(field, format!("must be at most {max} characters")));
    } else if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        errors.push(FieldError::new(field, "must not contain control characters"));
    }
}

/// A BCP 47-shaped language tag: `en`, `pt-BR`, `zh-Hant-TW`.
pub fn language(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    let mut parts = value.split('-');
    let primary_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphabetic()));
    let rest_ok = parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !(primary_ok && rest_ok) || value.len() > 35 {
        errors.push(FieldError::new(
            field,
            "must be a BCP 47 language tag such as en or pt-BR",
        ));
    }
}

/// An absolute http(s) URL of at most 2048 bytes without spaces.
pub fn http_url(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    let ok = (value.starts_with("https://") || value.starts_with("http://"))
        && value.len() <= 2048
        && value
            .split("://")
            .nth(1)
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && !value.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        errors.push(FieldError::new(
            field,
            "must be an http:// or https:// URL of at most 2048 characters",
        ));
    }
}

/// Something that looks like an email address: one `@`, a dot in the
/// domain, at most 254 bytes.
pub fn email(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    let v = value.trim();
    let ok = v.len() <= 254
        && v.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        })
        && !v.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        errors.push(FieldError::new(field, "must be an email address"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: impl Fn(&mut Vec<FieldError>)) -> bool {
        let mut e = Vec::new();
        f(&mut e);
        e.is_empty()
    }

    #[test]
    fn accepts_and_refuses() {
        assert!(check(|e| language(e, "l", "pt-BR")));
        assert!(!check(|e| language(e, "l", "english please")));
        assert!(check(|e| http_url(e, "u", "https://cdn.example.com/a.png")));
        assert!(!check(|e| http_url(e, "u", "javascript:alert(1)")));
        assert!(check(|e| email(e, "e", "Ada@Example.org")));
        assert!(!check(|e| email(e, "e", "ada@localhost")));
        assert!(!check(|e| text(e, "t", "  ", 1, 10)));
        assert!(!check(|e| text(e, "t", "a\u{0}b", 1, 10)));
    }
}

//! Accounts through HTTP, on SQLite and on a real PostgreSQL: the whole
//! flow, the token attacks an API meets, abuse limits and bad bodies.

mod common;

mod cases {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode, header};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::common::{Database, TestApp, assert_problem};

    /// Register, sign in, use and rotate tokens, sign out, change password.
    pub async fn the_whole_account_flow(db: Database) {
        let app = TestApp::new(db).await;
        let s = app.register("Ada@Example.org", None).await;
        let me = app.get("/v1/me", Some(&s.access)).await;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(
            (me.body["email"].as_str(), me.body["role"].as_str()),
            (Some("ada@example.org"), Some("creator"))
        );
        assert_eq!(me.body["display_name"], "Ada");

        // The same email in another case is the same account.
        let again = app
            .post(
                "/v1/auth/register",
                None,
                json!({"email": "ada@example.ORG", "password": "another password"}),
            )
            .await;
        assert_problem(&again, StatusCode::CONFLICT, "conflict");

        let wrong = app
            .post(
                "/v1/auth/login",
                None,
                json!({"email": "ada@example.org", "password": "not my password"}),
            )
            .await;
        assert_problem(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
        let nobody = app
            .post(
                "/v1/auth/login",
                None,
                json!({"email": "nobody@example.org", "password": "not my password"}),
            )
            .await;
        assert_eq!(
            nobody.body["detail"], wrong.body["detail"],
            "the answer must not tell which accounts exist"
        );

        let login = app
            .post(
                "/v1/auth/login",
                None,
                json!({"email": "ADA@example.org", "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        let first_refresh = login.body["refresh_token"].as_str().expect("refresh").to_string();

        // Refresh rotates: the new token works once, the old one is spent.
        let r1 = app
            .post("/v1/auth/refresh", None, json!({"refresh_token": first_refresh}))
            .await;
        assert_eq!(r1.status, StatusCode::OK, "{}", r1.body);
        let second_refresh = r1.body["refresh_token"].as_str().expect("refresh").to_string();
        assert_ne!(first_refresh, second_refresh);
        assert_eq!(
            app.get("/v1/me", r1.body["access_token"].as_str()).await.status,
            StatusCode::OK
        );

        // Replaying the spent token revokes the whole family, so the thief's
        // and the owner's newer token both die.
        let replay = app
            .post("/v1/auth/refresh", None, json!({"refresh_token": first_refresh}))
            .await;
        assert_problem(&replay, StatusCode::UNAUTHORIZED, "unauthorized");
        let after = app
            .post("/v1/auth/refresh", None, json!({"refresh_token": second_refresh}))
            .await;
        assert_problem(&after, StatusCode::UNAUTHORIZED, "unauthorized");

        // Other sessions (the registration's family) are unaffected; logout
        // ends that one.
        let r2 = app
            .post("/v1/auth/refresh", None, json!({"refresh_token": s.refresh}))
            .await;
        assert_eq!(r2.status, StatusCode::OK, "{}", r2.body);
        let live = r2.body["refresh_token"].as_str().expect("refresh").to_string();
        assert_eq!(
            app.post("/v1/auth/logout", None, json!({"refresh_token": live}))
                .await
                .status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            app.post("/v1/auth/refresh", None, json!({"refresh_token": live}))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );

        // Changing the password: the old one stops working, every refresh
        // token is revoked, access tokens issued before are refused.
        let session = app
            .post(
                "/v1/auth/login",
                None,
                json!({"email": "ada@example.org", "password": "correct horse battery"}),
            )
            .await;
        let access = session.body["access_token"].as_str().expect("access").to_string();
        let refresh = session.body["refresh_token"].as_str().expect("refresh").to_string();
        tokio::time::sleep(Duration::from_millis(1100)).await; // token times have one-second resolution
        let weak = app
            .post(
                "/v1/auth/password",
                Some(&access),
                json!({"current_password": "correct horse battery", "new_password": "short"}),
            )
            .await;
        assert_problem(&weak, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(weak.body["errors"][0]["field"], "new_password");
        let bad_current = app
            .post(
                "/v1/auth/password",
                Some(&access),
                json!({"current_password": "guess guess guess", "new_password": "a new long password"}),
            )
            .await;
        assert_eq!(bad_current.body["errors"][0]["field"], "current_password");
        let changed = app
            .post(
                "/v1/auth/password",
                Some(&access),
                json!({"current_password": "correct horse battery", "new_password": "a new long password"}),
            )
            .await;
        assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.body);
        assert_problem(
            &app.get("/v1/me", Some(&access)).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        assert_eq!(
            app.post("/v1/auth/refresh", None, json!({"refresh_token": refresh}))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        let old = app
            .post(
                "/v1/auth/login",
                None,
                json!({"email": "ada@example.org", "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(old.status, StatusCode::UNAUTHORIZED);
        let new = app
            .post(
                "/v1/auth/login",
                None,
                json!({"email": "ada@example.org", "password": "a new long password"}),
            )
            .await;
        assert_eq!(new.status, StatusCode::OK);
    }

    fn sign_with(app: &TestApp, sub: &str, exp_in: i64, aud: &str) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({"sub": sub, "aud": aud, "iat": now - 10, "exp": now + exp_in, "jti": uuid::Uuid::new_v4()});
        app.state.keys.sign(&claims)
    }

    /// Forged, expired, foreign and orphaned tokens are all refused with 401.
    pub async fn token_attacks_are_refused(db: Database) {
        let app = TestApp::new(db).await;
        let s = app.register("eve@example.org", None).await;
        assert_eq!(app.get("/v1/me", Some(&s.access)).await.status, StatusCode::OK);
        let parts: Vec<&str> = s.access.split('.').collect();

        let header_of = |json: serde_json::Value| URL_SAFE_NO_PAD.encode(json.to_string());
        let kid = app.state.keys.signing_kid().to_string();
        let attacks = vec![
            (
                "alg none",
                format!(
                    "{}.{}.",
                    header_of(json!({"alg": "none", "typ": "JWT", "kid": kid})),
                    parts[1]
                ),
            ),
            (
                "wrong signature",
                format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode([1u8; 32])),
            ),
            ("claims swapped under a valid signature", {
                let mut claims: serde_json::Value =
                    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
                claims["sub"] = json!(uuid::Uuid::new_v4());
                format!(
                    "{}.{}.{}",
                    parts[0],
                    URL_SAFE_NO_PAD.encode(claims.to_string()),
                    parts[2]
                )
            }),
            (
                "unknown kid",
                format!(
                    "{}.{}.{}",
                    header_of(json!({"alg": "HS256", "typ": "JWT", "kid": "k-stolen"})),
                    parts[1],
                    parts[2]
                ),
            ),
            (
                "no kid",
                format!(
                    "{}.{}.{}",
                    header_of(json!({"alg": "HS256", "typ": "JWT"})),
                    parts[1],
                    parts[2]
                ),
            ),
            ("expired", sign_with(&app, &s.user_id, -120, "reelflow-api")),
            (
                "another audience",
                sign_with(&app, &s.user_id, 600, "reelflow-playback"),
            ),
            ("garbage", "not.a.token".to_string()),
        ];
        for (name, token) in attacks {
            let r = app.get("/v1/me", Some(&token)).await;
            assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
            assert_eq!(
                r.headers.get(header::WWW_AUTHENTICATE).map(|v| v.as_bytes()),
                Some(&b"Bearer"[..]),
                "{name}"
            );
        }
        let r = app
            .send(
                Request::get("/v1/me")
                    .header(header::AUTHORIZATION, "Basic ZXZlOnB3")
                    .body(Body::empty())
                    .expect("req"),
            )
            .await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");

        // A token of an account that was deleted.
        let gone = app.register("gone@example.org", None).await;
        assert_eq!(
            app.delete("/v1/me", Some(&gone.access)).await.status,
            StatusCode::NO_CONTENT
        );
        let r = app.get("/v1/me", Some(&gone.access)).await;
        assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(r.body["detail"], "the account of this token no longer exists");
        assert_eq!(
            app.post("/v1/auth/refresh", None, json!({"refresh_token": gone.refresh}))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        // A well-signed token whose subject never existed.
        let ghost = sign_with(&app, &uuid::Uuid::new_v4().to_string(), 600, "reelflow-api");
        assert_problem(
            &app.get("/v1/me", Some(&ghost)).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
    }

    /// Partial profile updates, validated field by field.
    pub async fn profile_updates_are_partial_and_validated(db: Database) {
        let app = TestApp::new(db).await;
        let s = app.register("grace@example.org", None).await;
        let r = app.patch("/v1/me", Some(&s.access), json!({"display_name": "Grace", "country": "US", "language": "en-US", "avatar_url": "https://img.example.org/g.png"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            (r.body["display_name"].as_str(), r.body["country"].as_str()),
            (Some("Grace"), Some("US"))
        );
        // Absent fields stay; null clears.
        let r = app
            .patch(
                "/v1/me",
                Some(&s.access),
                json!({"bio": "Compilers.", "avatar_url": null}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["display_name"], "Grace");
        assert_eq!(r.body["bio"], "Compilers.");
        assert!(r.body["avatar_url"].is_null());
        assert_eq!(app.get("/v1/me", Some(&s.access)).await.body["country"], "US");

        let r = app.patch("/v1/me", Some(&s.access), json!({"display_name": "", "country": "usa", "language": "english!", "avatar_url": "javascript:alert(1)"})).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        let mut fields: Vec<&str> = r.body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e["field"].as_str().expect("field"))
            .collect();
        fields.sort();
        assert_eq!(fields, vec!["avatar_url", "country", "display_name", "language"]);
        let r = app.patch("/v1/me", Some(&s.access), json!({"role": "admin"})).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(r.body["errors"][0]["field"], "role", "{}", r.body);
        assert_eq!(app.get("/v1/me", Some(&s.access)).await.body["role"], "creator");
    }

    /// Roles: nobody registers as admin; admins appoint; others may not.
    pub async fn only_admins_manage_users(db: Database) {
        let app = TestApp::new(db).await;
        let r = app
            .post(
                "/v1/auth/register",
                None,
                json!({"email": "mallory@example.org", "password": "correct horse battery", "role": "admin"}),
            )
            .await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        let viewer = app.register("vic@example.org", Some("viewer")).await;
        let creator = app.register("cat@example.org", None).await;
        let admin = app.admin("root@example.org").await;

        // Admins list accounts and find them by email; the search is
        // literal (`_` matches only `_`).
        let emails = |r: &super::common::Response| -> Vec<String> {
            let mut emails: Vec<String> = r
                .body
                .as_array()
                .unwrap_or_else(|| panic!("{}", r.body))
                .iter()
                .map(|u| u["email"].as_str().expect("email").to_string())
                .collect();
            emails.sort();
            emails
        };
        let r = app.get("/v1/users", Some(&admin.access)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(emails(&r), ["cat@example.org", "root@example.org", "vic@example.org"]);
        let r = app.get("/v1/users?q=CAT", Some(&admin.access)).await;
        assert_eq!(emails(&r), ["cat@example.org"]);
        let r = app.get("/v1/users?q=_at", Some(&admin.access)).await;
        assert!(emails(&r).is_empty(), "{}", r.body);
        assert_problem(
            &app.get("/v1/users?limit=0", Some(&admin.access)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation",
        );
        assert_problem(
            &app.get("/v1/users", Some(&creator.access)).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );

        let r = app
            .call(
                Method::PUT,
                &format!("/v1/users/{}/role", viewer.user_id),
                Some(&creator.access),
                Some(json!({"role": "admin"})),
            )
            .await;
        assert_problem(&r, StatusCode::FORBIDDEN, "forbidden");
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/users/{}/role", viewer.user_id),
                Some(&admin.access),
                Some(json!({"role": "creator"})),
            )
            .await;
        assert_eq!(
            (r.status, r.body["role"].as_str()),
            (StatusCode::OK, Some("creator")),
            "{}",
            r.body
        );
        // The new role applies to tokens already issued.
        assert_eq!(app.get("/v1/me", Some(&viewer.access)).await.body["role"], "creator");
        let r = app
            .call(
                Method::PUT,
                &format!("/v1/users/{}/role", uuid::Uuid::new_v4()),
                Some(&admin.access),
                Some(json!({"role": "viewer"})),
            )
            .await;
        assert_problem(&r, StatusCode::NOT_FOUND, "not-found");

        assert_problem(
            &app.delete(&format!("/v1/users/{}", creator.user_id), Some(&viewer.access))
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
        assert_eq!(
            app.delete(&format!("/v1/users/{}", creator.user_id), Some(&admin.access))
                .await
                .status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            app.get("/v1/me", Some(&creator.access)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }

    /// Registration and login are rate limited per IP and per account, with
    /// Retry-After.
    pub async fn abuse_is_rate_limited(db: Database) {
        let app = TestApp::with(db, |c| {
            c.limits.register_per_ip_per_hour = 3;
            c.limits.login_per_account_per_minute = 2;
            c.limits.api_per_user_per_minute = 5;
        })
        .await;
        let s = app.register("a1@example.org", None).await;
        app.register("a2@example.org", None).await;
        app.register("a3@example.org", None).await;
        let r = app
            .post(
                "/v1/auth/register",
                None,
                json!({"email": "a4@example.org", "password": "correct horse battery"}),
            )
            .await;
        assert_problem(&r, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
        let retry: u64 = r
            .headers
            .get(header::RETRY_AFTER)
            .expect("Retry-After")
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((1..=3600).contains(&retry), "{retry}");

        for _ in 0..2 {
            app.post(
                "/v1/auth/login",
                None,
                json!({"email": "a1@example.org", "password": "guessing 1234"}),
            )
            .await;
        }
        let r = app
            .post(
                "/v1/auth/login",
                None,
                json!({"email": "a1@example.org", "password": "correct horse battery"}),
            )
            .await;
        assert_problem(&r, StatusCode::TOO_MANY_REQUESTS, "rate-limited");
        // Another account from the same address is not affected.
        let r = app
            .post(
                "/v1/auth/login",
                None,
                json!({"email": "a2@example.org", "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);

        let statuses: Vec<u16> = {
            let mut v = Vec::new();
            for _ in 0..7 {
                v.push(app.get("/v1/me", Some(&s.access)).await.status.as_u16());
            }
            v
        };
        assert_eq!(&statuses[..5], &[200; 5]);
        assert_eq!(statuses[6], 429, "{statuses:?}");
    }

    /// Bad bodies get the right 4xx, never a 500.
    pub async fn bad_bodies_get_clear_errors(db: Database) {
        let app = TestApp::new(db).await;
        let send = |content_type: Option<&'static str>, body: Vec<u8>| {
            let mut req = Request::builder().method(Method::POST).uri("/v1/auth/register");
            if let Some(ct) = content_type {
                req = req.header(header::CONTENT_TYPE, ct);
            }
            req.body(Body::from(body)).expect("request")
        };
        let r = app.send(send(Some("application/json"), b"{\"email\": ".to_vec())).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "bad-request");
        let r = app.send(send(Some("text/plain"), b"{}".to_vec())).await;
        assert_problem(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
        let r = app
            .send(send(
                Some("application/json"),
                format!("{{\"email\": \"{}\"}}", "x".repeat(200_000)).into_bytes(),
            ))
            .await;
        assert_problem(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
        let r = app
            .send(send(
                Some("application/json"),
                b"{\"email\": \"a@example.org\"}".to_vec(),
            ))
            .await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(r.body["errors"][0]["field"], "password", "{}", r.body);
        let r = app
            .send(send(
                Some("application/json"),
                b"{\"email\": 7, \"password\": \"x\"}".to_vec(),
            ))
            .await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        let r = app
            .send(send(
                Some("application/json"),
                b"{\"email\": \"not-an-email\", \"password\": \"short\"}".to_vec(),
            ))
            .await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(r.body["errors"].as_array().map(Vec::len), Some(2), "{}", r.body);
    }
}

on_both_databases!(
    the_whole_account_flow,
    token_attacks_are_refused,
    profile_updates_are_partial_and_validated,
    only_admins_manage_users,
    abuse_is_rate_limited,
    bad_bodies_get_clear_errors,
);

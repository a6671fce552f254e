//! The web console, as a new user meets it: Debian's Chromium (driven by
//! playwright-core) signs up on `reelflow up`, uploads a clip through the
//! page with tus-js-client, watches the library's progress bar (fed by a
//! subscription) reach ready, plays the video, and sees the view and the
//! viewer on the analytics page while it plays; then the SQL console, a
//! phone-sized screen and the admin's pages. Screenshots of each page are kept under the target
//! directory (`tmp/console-screenshots`).

mod common;

use reelflow_ingest::transcode::test_pattern::TestPattern;
use serde_json::Value;

#[test]
fn a_new_user_signs_up_uploads_watches_it_process_plays_it_and_sees_the_numbers_move() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    common::create_admin(&data, "ops@example.org", "the admin's long password");
    let up = common::Up::start(&data);
    let base = format!("http://{}", up.addr);
    let clip = dir.path().join("holiday.mp4");
    TestPattern::new(Some("854x480"), true, 20)
        .write(&clip)
        .expect("ffmpeg writes the clip");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let report = common::node_report(
        "console_story.mjs",
        &[
            base.as_ref(),
            clip.as_os_str(),
            shots.as_os_str(),
            "ops@example.org".as_ref(),
            "the admin's long password".as_ref(),
        ],
    );
    assert!(report["error"].is_null(), "{report:#}");
    assert!(
        report["console"].as_array().is_some_and(Vec::is_empty),
        "the pages logged errors: {report:#}"
    );
    // The only failed requests are the ones the story provokes: a wrong
    // password and a query naming a missing column.
    assert_eq!(
        report["http_errors"],
        serde_json::json!(["POST /v1/auth/login 401", "POST /v1/sql 400"]),
        "{report:#}"
    );

    // Signing in and up.
    assert_eq!(report["first_page"], "Sign in", "{report:#}");
    let wrong = report["wrong_password"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        wrong.contains("email or password"),
        "a wrong password says so: {report:#}"
    );
    assert_eq!(report["short_password_blocked"], true, "{report:#}");
    assert_eq!(report["after_sign_up"], "My videos", "{report:#}");
    assert!(
        report["who"]
            .as_str()
            .is_some_and(|w| w.contains("New Creator") && w.contains("creator")),
        "{report:#}"
    );

    // The library's progress bar moved, by subscription, until ready.
    assert_eq!(report["final_status"]["status"], "ready", "{report:#}");
    assert_eq!(report["final_status"]["progress"], 100, "{report:#}");
    let seen: Vec<f64> = report["progress_seen"]
        .as_array()
        .expect("progress seen")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert!(
        seen.iter().any(|p| *p > 0.0 && *p < 100.0),
        "the bar showed progress between 0 and 100: {report:#}"
    );

    // The player: poster, a ladder in the quality menu, storyboard previews.
    assert_eq!(report["player"]["poster"], true, "{report:#}");
    let levels = report["player"]["levels"].as_u64().unwrap_or(0);
    assert!(levels >= 2, "{report:#}");
    assert_eq!(
        report["player"]["quality_options"].as_u64(),
        Some(levels + 1),
        "{report:#}"
    );
    assert_eq!(report["storyboard_preview"], true, "{report:#}");

    // Analytics showed nothing before the video played, then the view and
    // the viewer while it played, live.
    let number = |v: &Value| v.as_str().and_then(|s| s.trim().parse::<f64>().ok()).unwrap_or(-1.0);
    assert_eq!(number(&report["analytics"]["before"]["views"]), 0.0, "{report:#}");
    assert_eq!(
        number(&report["analytics"]["before"]["watching_now"]),
        0.0,
        "{report:#}"
    );
    assert!(number(&report["analytics"]["views"]) >= 1.0, "{report:#}");
    assert!(number(&report["analytics"]["watching_now"]) >= 1.0, "{report:#}");
    eprintln!(
        "analytics moved within {} s of opening the player",
        report["analytics"]["seconds_after_opening_the_player"]
    );

    // The SQL console answers with the time it read at, and errors clearly.
    assert_eq!(report["sql"]["rows"], 1, "{report:#}");
    assert!(
        report["sql"]["as_of"]
            .as_str()
            .is_some_and(|s| s.contains("consistent as of")),
        "{report:#}"
    );
    assert!(
        report["sql_error"].as_str().is_some_and(|s| s.contains("nope")),
        "{report:#}"
    );

    // A phone-sized screen has no sideways scrolling; after a page change
    // the keyboard's focus is on the content, and Tab reaches the video's
    // link.
    assert_eq!(report["phone"]["overflow"], false, "{report:#}");
    assert!(
        report["phone"]["card_width"].as_f64().is_some_and(|w| w <= 390.0),
        "{report:#}"
    );
    assert_eq!(report["focus_after_route"], "main", "{report:#}");
    assert_eq!(report["first_tab"], "Watch", "{report:#}");

    // The admin sees the accounts, the pipeline and the sources.
    let accounts = report["admin"]["accounts"].as_array().expect("accounts");
    for email in ["new.creator@example.org", "ops@example.org"] {
        assert!(accounts.iter().any(|a| a == email), "{email}: {report:#}");
    }
    assert_eq!(report["admin"]["ready"], "1", "{report:#}");
    assert_eq!(report["admin"]["failed"], "0", "{report:#}");
    assert!(
        report["admin"]["source_rows"].as_u64().is_some_and(|n| n >= 4),
        "{report:#}"
    );

    // A screenshot of every page.
    let shots: Vec<&str> = report["shots"]
        .as_array()
        .expect("shots")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(shots.len() >= 9, "{report:#}");
    for shot in shots {
        let bytes = std::fs::read(shot).unwrap_or_else(|e| panic!("{shot}: {e}"));
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000,
            "{shot} is a real screenshot"
        );
    }
    eprintln!(
        "screenshots: {}",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("console-screenshots")
            .display()
    );
}

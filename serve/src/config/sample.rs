//! `serve/reelflow.sample.toml` is the reference for every setting and its
//! default. These tests keep it so: parsed, it is exactly
//! [`Config::default`]; it names every key of the config, the ones set by
//! default as settings and the ones unset by default as `# key = example`
//! lines; and those examples are settings the config accepts.
//!
//! After changing a default, adding or removing a setting, rewrite the
//! sample's values with
//! `REELFLOW_BLESS=1 cargo test --workspace --lib config::sample`; its
//! comments are kept. A setting that is unset by default needs its example
//! written by hand.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use super::Config;

fn sample_path() -> PathBuf {
    // As `cargo test` gives it when it runs the test: the path compiled in
    // is where the binary was built, which a shared build cache can hand
    // to another checkout.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("reelflow.sample.toml")
}

const BLESS: &str = "REELFLOW_BLESS=1 cargo test --workspace --lib config::sample";

/// The sample as checked in, rewritten first when blessing. Read once per
/// process, so tests running at once never read a half-written blessing;
/// written by a rename, so neither does another process.
fn checked_in_sample() -> String {
    static SAMPLE: OnceLock<String> = OnceLock::new();
    SAMPLE
        .get_or_init(|| {
            let path = sample_path();
            let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            if std::env::var_os("REELFLOW_BLESS").is_none() {
                return on_disk;
            }
            let blessed = bless(&on_disk);
            if blessed != on_disk {
                let new = path.with_extension("toml.new");
                std::fs::write(&new, &blessed)
                    .and_then(|()| std::fs::rename(&new, &path))
                    .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            }
            blessed
        })
        .clone()
}

/// One line of the sample, as far as keys go.
#[derive(Debug, PartialEq)]
enum Line<'a> {
    /// `[section]`, with whatever follows it.
    Section(&'a str),
    /// `key = value  # comment`: a setting.
    Setting { key: &'a str, rest: &'a str },
    /// `# key = value  # comment`: an example of a setting unset by default.
    Example { key: &'a str, rest: &'a str },
    /// Blank, or prose.
    Other,
}

/// A bare TOML key, as every setting's name is.
fn key_of(text: &str) -> Option<(&str, &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(text.len());
    let (key, rest) = text.split_at(end);
    let rest = rest.strip_prefix(" = ")?;
    (!key.is_empty()).then_some((key, rest))
}

fn classify(line: &str) -> Line<'_> {
    if let Some(header) = line.strip_prefix('[') {
        return Line::Section(header.split_once(']').map_or(header, |(name, _)| name));
    }
    if let Some((key, rest)) = key_of(line) {
        return Line::Setting { key, rest };
    }
    if let Some((key, rest)) = line.strip_prefix("# ").and_then(key_of) {
        return Line::Example { key, rest };
    }
    Line::Other
}

/// Every line that names a key, with its dotted path (`http.listen`) and
/// whether it is an example.
fn named_keys(sample: &str) -> Vec<(String, bool)> {
    let mut section = None;
    let mut keys = Vec::new();
    for line in sample.lines() {
        let path = |key: &str| section.map_or_else(|| key.to_string(), |s: &str| format!("{s}.{key}"));
        match classify(line) {
            Line::Section(name) => section = Some(name),
            Line::Setting { key, .. } => keys.push((path(key), false)),
            Line::Example { key, .. } => keys.push((path(key), true)),
            Line::Other => {}
        }
    }
    keys
}

/// Dotted paths of every key of the default config, split into those with a
/// value and those unset (`None`, which TOML cannot spell). JSON keeps the
/// unset ones as `null`, so it names them all.
fn default_keys() -> (BTreeSet<String>, BTreeSet<String>) {
    fn walk(prefix: &str, value: &serde_json::Value, set: &mut BTreeSet<String>, unset: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(fields) => {
                for (key, value) in fields {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, value, set, unset);
                }
            }
            serde_json::Value::Null => {
                unset.insert(prefix.to_string());
            }
            _ => {
                set.insert(prefix.to_string());
            }
        }
    }
    let value = serde_json::to_value(Config::default()).expect("the config serialises to JSON");
    let (mut set, mut unset) = (BTreeSet::new(), BTreeSet::new());
    walk("", &value, &mut set, &mut unset);
    (set, unset)
}

/// Splits `value  # comment` after the value: the shortest prefix that
/// parses as a TOML value (a `#` may sit inside a string).
fn split_value(rest: &str) -> (&str, &str) {
    let ends = rest.match_indices('#').map(|(i, _)| i).chain([rest.len()]);
    for end in ends {
        let value = rest[..end].trim_end();
        if toml::from_str::<toml::Table>(&format!("k = {value}")).is_ok() {
            return (value, &rest[value.len()..]);
        }
    }
    (rest, "")
}

/// The sample with every setting's value replaced by its default, settings
/// the config no longer has dropped, and missing ones added at the end of
/// their section. Comments and examples stay as they are:
/// `the_sample_names_every_key` reports examples that name no setting.
fn bless(sample: &str) -> String {
    let defaults = toml::Table::try_from(Config::default()).expect("the config serialises to TOML");
    let lookup = |path: &str| -> Option<toml::Value> {
        let mut parts = path.split('.');
        let mut value = defaults.get(parts.next()?)?;
        for part in parts {
            value = value.get(part)?;
        }
        Some(value.clone())
    };
    let named: BTreeSet<String> = named_keys(sample).into_iter().map(|(path, _)| path).collect();
    let section_of = |path: &str| path.rsplit_once('.').map(|(s, _)| s.to_string());
    // In the order the config serialises them, which is the structs'.
    let in_order = toml::to_string(&Config::default()).expect("the config serialises to TOML");
    let mut missing: Vec<String> = named_keys(&in_order)
        .into_iter()
        .map(|(path, _)| path)
        .filter(|path| !named.contains(path))
        .collect();

    let mut out: Vec<String> = Vec::new();
    let mut section: Option<String> = None;
    let flush = |section: &Option<String>, out: &mut Vec<String>, missing: &mut Vec<String>| {
        // Added after the section's last line that is not blank.
        let at = out.iter().rposition(|l| !l.trim().is_empty()).map_or(0, |i| i + 1);
        let mut added = Vec::new();
        missing.retain(|path| {
            if section_of(path) != *section {
                return true;
            }
            let key = path.rsplit('.').next().expect("a key");
            added.push(format!("{key} = {}", lookup(path).expect("a default")));
            false
        });
        out.splice(at..at, added);
    };
    for line in sample.lines() {
        let path = |key: &str| {
            section
                .as_ref()
                .map_or_else(|| key.to_string(), |s| format!("{s}.{key}"))
        };
        match classify(line) {
            Line::Section(name) => {
                flush(&section, &mut out, &mut missing);
                section = Some(name.to_string());
                out.push(line.to_string());
            }
            Line::Setting { key, rest } => {
                let Some(default) = lookup(&path(key)) else {
                    continue;
                };
                let (value, comment) = split_value(rest);
                let new = default.to_string();
                // Keep the comment where it was if the new value fits.
                let padding = if comment.is_empty() {
                    String::new()
                } else {
                    let gap = value.len() + (comment.len() - comment.trim_start().len());
                    " ".repeat(gap.saturating_sub(new.len()).max(1))
                };
                out.push(format!("{key} = {new}{padding}{}", comment.trim_start()));
            }
            _ => out.push(line.to_string()),
        }
    }
    flush(&section, &mut out, &mut missing);
    // Sections the sample does not have yet.
    while let Some(first) = missing.first() {
        let new = section_of(first);
        out.push(String::new());
        if let Some(name) = &new {
            out.push(format!("[{name}]"));
        }
        flush(&new, &mut out, &mut missing);
    }
    out.join("\n") + "\n"
}

#[test]
fn the_sample_is_the_defaults() {
    let sample = checked_in_sample();
    let parsed: Config = toml::from_str(&sample).unwrap_or_else(|e| {
        panic!(
            "{} is not a valid configuration: {e}\nrun {BLESS}",
            sample_path().display()
        )
    });
    assert_eq!(
        parsed,
        Config::default(),
        "{} says other defaults than the code; run {BLESS}",
        sample_path().display()
    );
}

#[test]
fn the_sample_names_every_key() {
    let sample = checked_in_sample();
    let (set, unset) = default_keys();
    let mut settings = BTreeSet::new();
    let mut examples = BTreeSet::new();
    for (path, example) in named_keys(&sample) {
        let fresh = if example {
            examples.insert(path.clone())
        } else {
            settings.insert(path.clone())
        };
        assert!(fresh, "{path} is in the sample twice");
    }
    let missing: Vec<_> = set.difference(&settings).collect();
    assert!(
        missing.is_empty(),
        "the sample lacks these settings: {missing:?}; run {BLESS}"
    );
    let missing: Vec<_> = unset.difference(&examples).collect();
    assert!(
        missing.is_empty(),
        "the sample lacks an example (`# key = value`) of these settings, unset by default: {missing:?}"
    );
    let stray: Vec<_> = settings.difference(&set).chain(examples.difference(&unset)).collect();
    assert!(
        stray.is_empty(),
        "the sample names these as they are not (a setting that is unset by default, \
         an example of one that has a default, or no setting at all): {stray:?}"
    );
}

#[test]
fn the_samples_examples_are_accepted() {
    let sample = checked_in_sample();
    let uncommented: String = sample
        .lines()
        .map(|line| match classify(line) {
            Line::Example { .. } => &line[2..],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config: Config = toml::from_str(&uncommented)
        .unwrap_or_else(|e| panic!("the sample with its examples uncommented is not a configuration: {e}"));
    config
        .validate()
        .unwrap_or_else(|e| panic!("the sample's examples, all set, are not a valid configuration: {e:#}"));
    // Each example set something the default leaves unset.
    let (_, unset) = default_keys();
    let value = serde_json::to_value(&config).expect("JSON");
    for path in &unset {
        let mut v = &value;
        for part in path.split('.') {
            v = &v[part];
        }
        assert!(!v.is_null(), "the example of {path} did not set it");
    }
}

#[test]
fn bless_keeps_comments_and_mends_values() {
    let sample = "# Prose, not a key\ndata_dir = \"/elsewhere\"   # where\n\n[http]\nlisten = \"127.0.0.1:1\"  # a # in a comment\nbogus = 1\n# metrics_listen = \"0.0.0.0:9090\"  # example\n\n[log]\n";
    let blessed = bless(sample);
    assert!(
        blessed.starts_with("# Prose, not a key\ndata_dir = \"./reelflow-data\" # where\n"),
        "{blessed}"
    );
    assert!(
        blessed.contains("listen = \"127.0.0.1:8080\" # a # in a comment\n"),
        "{blessed}"
    );
    assert!(!blessed.contains("bogus"), "{blessed}");
    assert!(
        blessed.contains("# metrics_listen = \"0.0.0.0:9090\"  # example\n"),
        "{blessed}"
    );
    assert!(blessed.contains("max_body_bytes = 65536\n"), "{blessed}");
    assert!(blessed.contains("[log]\nbackend = \"embedded\"\n"), "{blessed}");
    assert!(blessed.contains("\n[sql]\npgwire_listen = "), "{blessed}");
    let parsed: Config = toml::from_str(&blessed).expect("blessed sample parses");
    assert_eq!(parsed, Config::default());
}

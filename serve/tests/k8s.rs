//! The Kubernetes manifests (`k8s/`): every overlay renders with kustomize
//! and validates strictly against the Kubernetes schemas; every workload is
//! probed, sized, locked down and scraped; and the dataflow, started from
//! the rendered StatefulSet — its entrypoint, its configuration and its
//! environment, with only the pods' names resolved to loopback addresses —
//! gives the same SQL answers as a cluster of 1, 2 and 3 processes over the
//! same events in the real Kafka broker.
//!
//! kustomize and kubernetes-validate come from `scripts/k8s.sh install`
//! (the test command runs it), named by `REELFLOW_TEST_KUSTOMIZE` and
//! `REELFLOW_TEST_KUBERNETES_VALIDATE`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reelflow_dataflows::Windows;
use reelflow_dataflows::{Time, View, reference};
use serde_json::Value;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test.sh (it installs the tools)"))
}

fn k8s_dir() -> PathBuf {
    common::manifest_dir().join("../k8s")
}

/// Every overlay, by name.
fn overlays() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(k8s_dir().join("overlays"))
        .expect("k8s/overlays")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `kustomize build k8s/overlays/<overlay>`, as text.
fn render(overlay: &str) -> String {
    let out = Command::new(env("REELFLOW_TEST_KUSTOMIZE"))
        .arg("build")
        .arg(k8s_dir().join("overlays").join(overlay))
        .output()
        .expect("run kustomize");
    assert!(
        out.status.success(),
        "kustomize build {overlay}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The rendered resources of an overlay.
fn resources(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| {
            let v = serde_yaml_ng::Value::deserialize(doc).expect("YAML");
            serde_json::to_value(v).expect("as JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(all: &'a [Value], kind: &str, name: &str) -> &'a Value {
    all.iter()
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// A generated ConfigMap or Secret, by the name before kustomize's hash.
fn generated<'a>(all: &'a [Value], kind: &str, name: &str) -> &'a Value {
    all.iter()
        .find(|r| {
            r["kind"] == kind
                && r["metadata"]["name"]
                    .as_str()
                    .and_then(|n| n.strip_prefix(name))
                    .is_some_and(|rest| rest.len() == 11 && rest.starts_with('-'))
        })
        .unwrap_or_else(|| panic!("no generated {kind} {name}"))
}

/// Runs kubernetes-validate --strict on `yaml`; its success and output.
fn validate(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, yaml).expect("write");
    let out = Command::new(env("REELFLOW_TEST_KUBERNETES_VALIDATE"))
        .arg("--strict")
        .arg(&file)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_overlay_renders_and_validates_strictly_against_the_kubernetes_schemas() {
    let names = overlays();
    for overlay in ["dev", "prod", "prod-scale-on-lag"] {
        assert!(names.iter().any(|n| n == overlay), "k8s/overlays/{overlay} exists");
    }
    for overlay in &names {
        let yaml = render(overlay);
        let count = resources(&yaml).len();
        let (ok, report) = validate(&yaml);
        assert!(ok, "{overlay} does not validate:\n{report}");
        assert_eq!(
            report.matches(" passed for resource ").count(),
            count,
            "{overlay}: every one of its {count} resources was checked:\n{report}"
        );
    }
}

#[test]
fn the_validator_refuses_what_kubernetes_would_refuse() {
    let yaml = render("dev");
    // A misspelt field, a string where a number goes, a missing required
    // field: each alone makes the manifests invalid.
    let breakages = [
        ("containerPort: 8080", "containerport: 8080"),
        ("  serviceName: reelflow-dataflow", "  serviceName: 7"),
        (
            "    matchLabels:\n      app.kubernetes.io/component: serve",
            "    matchLabel:\n      app.kubernetes.io/component: serve",
        ),
    ];
    for (from, to) in breakages {
        assert!(yaml.contains(from), "the rendered dev overlay contains {from:?}");
        let (ok, report) = validate(&yaml.replacen(from, to, 1));
        assert!(!ok, "changing {from:?} to {to:?} passed validation:\n{report}");
    }
}

fn workloads(all: &[Value]) -> impl Iterator<Item = &Value> {
    all.iter()
        .filter(|r| r["kind"] == "Deployment" || r["kind"] == "StatefulSet")
}

#[test]
fn every_workload_is_probed_sized_locked_down_and_scraped() {
    for overlay in overlays() {
        let all = resources(&render(&overlay));
        assert!(workloads(&all).count() >= 3, "{overlay} has workloads");
        for w in workloads(&all) {
            let name = format!("{overlay}: {} {}", w["kind"], w["metadata"]["name"]);
            let pod = &w["spec"]["template"];
            assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true, "{name}");
            assert_eq!(pod["spec"]["automountServiceAccountToken"], false, "{name}");
            let containers = pod["spec"]["containers"].as_array().expect("containers");
            for c in containers {
                let image = c["image"].as_str().expect("image");
                let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
                assert!(
                    !tag.is_empty() && tag != "latest",
                    "{name}: image {image} has a fixed tag"
                );
                for probe in ["livenessProbe", "readinessProbe"] {
                    assert!(c[probe].is_object(), "{name}: {probe}");
                }
                for kind in ["requests", "limits"] {
                    for resource in ["cpu", "memory"] {
                        assert!(c["resources"][kind][resource].is_string(), "{name}: {kind}.{resource}");
                    }
                }
                let sc = &c["securityContext"];
                assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}");
                assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}");
                assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]), "{name}");
            }
            if w["metadata"]["labels"]["app.kubernetes.io/name"] == "reelflow" {
                let a = &pod["metadata"]["annotations"];
                assert_eq!(a["prometheus.io/scrape"], "true", "{name}");
                let port: u64 = a["prometheus.io/port"].as_str().expect("port").parse().expect("number");
                assert!(
                    containers[0]["ports"]
                        .as_array()
                        .expect("ports")
                        .iter()
                        .any(|p| p["containerPort"] == port),
                    "{name}: the scraped port is a container port"
                );
                let hpa = all.iter().find(|r| {
                    r["kind"] == "HorizontalPodAutoscaler"
                        && r["spec"]["scaleTargetRef"]["name"] == w["metadata"]["name"]
                });
                if w["kind"] == "Deployment" {
                    assert!(hpa.is_some(), "{name} has an autoscaler");
                    assert!(
                        w["spec"]["replicas"].is_null(),
                        "{name}: the autoscaler owns the replica count"
                    );
                }
            }
        }
        // The dataflow: one cluster, started together, replaced together,
        // told its size, behind a headless Service and a disruption budget.
        let set = find(&all, "StatefulSet", "reelflow-dataflow");
        let spec = &set["spec"];
        assert_eq!(spec["podManagementPolicy"], "Parallel", "{overlay}");
        assert_eq!(spec["updateStrategy"]["type"], "OnDelete", "{overlay}");
        let replicas = spec["replicas"].as_u64().expect("replicas");
        assert_eq!(
            spec["template"]["metadata"]["annotations"]["reelflow.io/cluster-size"],
            replicas.to_string(),
            "{overlay}: the pods are told the replica count"
        );
        let headless = find(&all, "Service", spec["serviceName"].as_str().expect("serviceName"));
        assert_eq!(headless["spec"]["clusterIP"], "None", "{overlay}");
        assert_eq!(headless["spec"]["publishNotReadyAddresses"], true, "{overlay}");
        assert!(
            all.iter().any(|r| r["kind"] == "PodDisruptionBudget"
                && r["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]),
            "{overlay}: the dataflow has a disruption budget"
        );
        assert!(
            all.iter()
                .any(|r| r["kind"] == "NetworkPolicy" && r["spec"]["podSelector"] == serde_json::json!({})),
            "{overlay}: traffic is denied unless a policy lets it through"
        );
        find(&all, "Ingress", "reelflow");
        // Kafka in KRaft mode, with a volume per broker and a budget.
        let kafka = find(&all, "StatefulSet", "kafka");
        assert!(kafka["spec"]["volumeClaimTemplates"].is_array(), "{overlay}");
        let kafka_env = &kafka["spec"]["template"]["spec"]["containers"][0]["env"];
        let told = kafka_env
            .as_array()
            .expect("env")
            .iter()
            .find(|e| e["name"] == "KAFKA_REPLICAS")
            .expect("KAFKA_REPLICAS");
        assert_eq!(told["value"], kafka["spec"]["replicas"].to_string(), "{overlay}");
        find(&all, "PodDisruptionBudget", "kafka");
    }
    // prod: three brokers; PostgreSQL and S3 are outside, from Secrets the
    // operator creates; dev carries its own.
    let prod = resources(&render("prod"));
    assert_eq!(find(&prod, "StatefulSet", "kafka")["spec"]["replicas"], 3);
    assert!(
        !prod.iter().any(|r| r["kind"] == "Secret"),
        "prod takes its secrets by reference"
    );
    assert!(
        !prod
            .iter()
            .any(|r| r["metadata"]["name"] == "postgres" || r["metadata"]["name"] == "s3")
    );
    let dev = resources(&render("dev"));
    assert_eq!(find(&dev, "StatefulSet", "kafka")["spec"]["replicas"], 1);
    for name in ["postgres", "s3"] {
        find(&dev, "StatefulSet", name);
    }
    generated(&dev, "Secret", "reelflow");
    generated(&dev, "Secret", "reelflow-auth-keys");
}

/// How the container of a rendered workload is started: its arguments, and
/// its environment with every reference resolved the way the kubelet
/// resolves it, from the rendered ConfigMaps and the pod's annotations;
/// Secrets from `secrets`. Also its probes and scrape path.
struct Entrypoint {
    args: Vec<String>,
    env: Vec<(String, String)>,
    config: toml::Table,
    container: Value,
    annotations: Value,
}

fn entrypoint(all: &[Value], kind: &str, name: &str, secrets: &[(&str, &str)]) -> Entrypoint {
    let workload = find(all, kind, name);
    let pod = &workload["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    let args = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").to_string())
        .collect();
    let config_map = |name: &str| {
        all.iter()
            .find(|r| r["kind"] == "ConfigMap" && r["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("ConfigMap {name}"))["data"]
            .clone()
    };
    let mut env = Vec::new();
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let name = from["configMapRef"]["name"].as_str().expect("configMapRef");
        for (k, v) in config_map(name).as_object().expect("data") {
            env.push((k.clone(), v.as_str().expect("value").to_string()));
        }
    }
    for e in c["env"].as_array().expect("env") {
        let name = e["name"].as_str().expect("name").to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else if let Some(path) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            let key = path
                .strip_prefix("metadata.annotations['")
                .and_then(|k| k.strip_suffix("']"))
                .unwrap_or_else(|| panic!("a fieldRef to an annotation, not {path}"));
            pod["metadata"]["annotations"][key]
                .as_str()
                .expect("annotation")
                .to_string()
        } else if let Some(key) = e["valueFrom"]["secretKeyRef"]["key"].as_str() {
            match secrets.iter().find(|(k, _)| *k == key) {
                Some((_, v)) => v.to_string(),
                None if e["valueFrom"]["secretKeyRef"]["optional"] == true => continue,
                None => panic!("the test provides secret {key}"),
            }
        } else {
            panic!("unexpected env entry {e}")
        };
        env.push((name, value));
    }
    // The configuration file, from the ConfigMap the pod mounts.
    let volume = pod["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["configMap"].is_object())
        .expect("a ConfigMap volume");
    let file = config_map(volume["configMap"]["name"].as_str().expect("name"))["reelflow.toml"]
        .as_str()
        .expect("reelflow.toml")
        .to_string();
    Entrypoint {
        args,
        env,
        config: file.parse().expect("the ConfigMap holds valid TOML"),
        container: c.clone(),
        annotations: pod["metadata"]["annotations"].clone(),
    }
}

/// Sets `section.key` of a configuration table.
fn set(config: &mut toml::Table, section: &str, key: &str, value: impl Into<toml::Value>) {
    config
        .entry(section)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("a table")
        .insert(key.into(), value.into());
}

/// The pod's address `host:port` in place of the manifest's `0.0.0.0:port`.
fn rebind(config: &toml::Table, section: &str, key: &str, ip: &str) -> String {
    let addr = config[section][key]
        .as_str()
        .unwrap_or_else(|| panic!("{section}.{key}"));
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    assert_eq!(host, "0.0.0.0", "{section}.{key} listens on every address of the pod");
    format!("{ip}:{port}")
}

/// Starts the entrypoint as pod `hostname`: the configuration edited by
/// `edit` (paths and addresses), `env` overriding the manifest's values.
fn spawn(
    e: &Entrypoint,
    hostname: &str,
    dir: &Path,
    edit: impl FnOnce(&mut toml::Table),
    env: &[(&str, String)],
) -> Child {
    let mut config = e.config.clone();
    // The mounted Secret with the signing keys, and the pod's emptyDir.
    set(
        &mut config,
        "auth",
        "keys_file",
        dir.join("auth-keys.json").display().to_string(),
    );
    config.insert("data_dir".into(), dir.join(hostname).display().to_string().into());
    edit(&mut config);
    let file = dir.join(format!("{hostname}.toml"));
    std::fs::write(&file, toml::to_string(&config).expect("TOML")).expect("write config");
    let mut cmd = common::reelflow();
    cmd.args(&e.args);
    for (k, v) in &e.env {
        let v = match env.iter().find(|(name, _)| name == k) {
            Some((_, v)) => v.clone(),
            None if k == "REELFLOW_CONFIG" => file.display().to_string(),
            None => v.clone(),
        };
        cmd.env(k, v);
    }
    cmd.env("HOSTNAME", hostname)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the container's command")
}

struct Pod {
    child: Child,
    http: String,
    pg_port: u16,
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pod `i` of `n` on this machine: the rendered entrypoint and environment;
/// the pod's own address is 127.0.1<i>.1, so every pod listens on the
/// manifests' ports as pods do, and the peer names of the headless Service
/// resolve to those addresses. Scratch paths point into `dir`.
fn start_pod(
    e: &Entrypoint,
    i: usize,
    n: usize,
    dir: &Path,
    bucket: &str,
) -> (Child, std::sync::mpsc::Receiver<(String, u16)>) {
    let ip = format!("127.0.1{i}.1");
    let edit = |config: &mut toml::Table| {
        let peers = config["dataflow"]["statefulset_peers"]
            .as_str()
            .expect("statefulset_peers");
        let port = peers
            .strip_prefix("reelflow-dataflow-{i}.reelflow-dataflow:")
            .unwrap_or_else(|| panic!("peers are the headless Service's names, not {peers}"))
            .to_string();
        set(
            config,
            "dataflow",
            "statefulset_peers",
            format!("127.0.1{{i}}.1:{port}"),
        );
        let listen = rebind(config, "dataflow", "listen", &ip);
        set(config, "dataflow", "listen", listen);
        let pgwire = rebind(config, "sql", "pgwire_listen", &ip);
        set(config, "sql", "pgwire_listen", pgwire);
    };
    let env = [
        ("REELFLOW_KAFKA_BROKERS", env("REELFLOW_TEST_KAFKA")),
        ("REELFLOW_DATAFLOW_REPLICAS", n.to_string()),
        ("REELFLOW_S3_BUCKET", bucket.to_string()),
    ];
    let mut child = spawn(e, &format!("reelflow-dataflow-{i}"), dir, edit, &env);
    let rx = common::watch_banner(&mut child);
    (child, rx)
}

fn start_cluster(e: &Entrypoint, n: usize, dir: &Path, bucket: &str) -> Vec<Pod> {
    let started: Vec<_> = (0..n).map(|i| start_pod(e, i, n, dir, bucket)).collect();
    started
        .into_iter()
        .map(|(child, rx)| {
            let (http, pg_port) = rx
                .recv_timeout(Duration::from_secs(90))
                .expect("the pod prints where it serves once the cluster has formed");
            Pod { child, http, pg_port }
        })
        .collect()
}

fn wait_ready(http: &reqwest::blocking::Client, pod: &Pod) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(r) = http.get(format!("http://{}/readyz", pod.http)).send()
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "pod at {} never became ready", pod.http);
        std::thread::sleep(Duration::from_millis(100));
    }
}

const ADMIN_PASSWORD: &str = "a long admin password";

fn psql(pod: &Pod, admin: &str, query: &str) -> String {
    let host = pod.http.rsplit_once(':').expect("host:port").0;
    let out = Command::new("psql")
        .env("PGPASSWORD", ADMIN_PASSWORD)
        .args(["-X", "-A", "-t", "-h", host, "-p", &pod.pg_port.to_string()])
        .args(["-U", admin, "-d", "reelflow", "-c", query])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "psql {query}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<&str> = std::str::from_utf8(&out.stdout).expect("UTF-8").lines().collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// The last `reelflow_dataflow_snapshot_frontier_ms` pod `pod` shows: the
/// snapshot it started from (none before the first).
fn snapshot_frontier(http: &reqwest::blocking::Client, pod: &Pod) -> Option<Time> {
    let text = http
        .get(format!("http://{}/metrics", pod.http))
        .send()
        .and_then(|r| r.text())
        .expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("reelflow_dataflow_snapshot_frontier_ms "))
        .map(|v| v.trim().parse().expect("a number"))
}

/// Stops the cluster as Kubernetes does, with SIGTERM: pod 0 writes its
/// last snapshot to the bucket before it exits, whatever its peers do.
fn terminate(pods: Vec<Pod>) {
    for pod in &pods {
        let sent = Command::new("kill")
            .args(["-TERM", &pod.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
    }
    let mut pods = pods;
    let status = pods[0].child.wait().expect("wait");
    assert!(status.success(), "pod 0 stops cleanly on SIGTERM: {status}");
}

/// The StatefulSet as rendered, scaled 1 → 2 → 3 the way the README says
/// (every pod replaced at once, each time with SIGTERM): each cluster
/// starts from the snapshot the one before wrote to the bucket as it
/// stopped, and answers what the reference says, on its first and its
/// last pod alike.
#[test]
fn the_rendered_statefulset_answers_sql_identically_as_1_2_and_3_processes() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let _context = runtime.enter();
    let log = common::test_kafka();
    let (facts, times) = runtime.block_on(common::append_workload(&log, 53, 3, Duration::from_millis(100)));
    let at = *times.last().expect("times");
    let views = reference::views_at(&facts, at, &Windows::default());
    let stats = &views[&View::VideoStats];
    assert!(!stats.is_empty(), "the workload fills video_stats");

    // The production-like pieces: the accounts in the real PostgreSQL (the
    // Secret's database-url), one signing-key file for every pod.
    let database_url = runtime.block_on(common::fresh_postgres_url());
    let admin = format!("k8s-{}@example.org", uuid::Uuid::new_v4().simple());
    common::create_admin_at(&database_url, &admin, ADMIN_PASSWORD);
    // The bucket its snapshots go to.
    let (s3_endpoint, s3_key, s3_secret) = (
        env("REELFLOW_TEST_S3_ENDPOINT"),
        env("REELFLOW_TEST_S3_ACCESS_KEY_ID"),
        env("REELFLOW_TEST_S3_SECRET_ACCESS_KEY"),
    );
    let entrypoint = entrypoint(
        &resources(&render("dev")),
        "StatefulSet",
        "reelflow-dataflow",
        &[
            ("database-url", &database_url),
            ("s3-endpoint", &s3_endpoint),
            ("s3-access-key-id", &s3_key),
            ("s3-secret-access-key", &s3_secret),
        ],
    );
    assert_eq!(entrypoint.args, ["dataflow"]);

    // The views that do not move with the clock once the workload is over:
    // the same at any time after it, so the same from every cluster.
    let steady: Vec<View> = View::ALL
        .into_iter()
        .filter(|v| ![View::SourceProgress, View::ConcurrentViewers, View::Trending].contains(v))
        .collect();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let dir = tempfile::tempdir().expect("tempdir");
    // The Secret with the signing keys, mounted into every pod.
    reelflow_serve::auth::Keyring::load_or_create(&dir.path().join("auth-keys.json")).expect("keys");
    let bucket = format!("rf-k8s-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut answers = Vec::new();
    let mut previous: Option<Time> = None;
    for n in 1..=3 {
        let pods = start_cluster(&entrypoint, n, dir.path(), &bucket);
        for pod in &pods {
            wait_ready(&http, pod);
        }
        // The first cluster rebuilds from the log; the later ones start
        // from the snapshot the one before wrote as it stopped, which
        // covers the whole workload.
        let frontier = snapshot_frontier(&http, &pods[0]);
        match (n, frontier, previous) {
            (1, None, _) => {}
            (_, Some(f), p) if n > 1 && p.is_none_or(|p| f > p) && f > at => {}
            other => panic!("{n} processes: started from the wrong snapshot: {other:?}"),
        }
        previous = frontier;
        // A time every cluster can read: nothing before its snapshot is.
        let t = frontier.map_or(at, |f| f.max(at));
        let queries: Vec<String> = steady
            .iter()
            .map(|v| format!("SELECT * FROM {} AS OF {t}", v.def().name))
            .chain([format!(
                "SELECT count(*), sum(views), sum(watch_time_s) FROM video_stats AS OF {t}"
            )])
            .collect();
        // Any pod answers for the whole cluster; ask the first and the last.
        let first: Vec<String> = queries.iter().map(|q| psql(&pods[0], &admin, q)).collect();
        let last: Vec<String> = queries.iter().map(|q| psql(&pods[n - 1], &admin, q)).collect();
        assert_eq!(first, last, "{n} processes: the first and the last pod agree");
        let summary = first.last().expect("summary");
        let views: i64 = stats.iter().map(|(_, v)| v[0].to_json().as_i64().expect("views")).sum();
        assert!(
            summary.starts_with(&format!("{}|{views}|", stats.len())),
            "{n} processes: video_stats holds {} videos with {views} views, not {summary}",
            stats.len()
        );
        answers.push((n, first));
        terminate(pods);
    }
    for (n, got) in &answers[1..] {
        for (v, (a, b)) in steady.iter().zip(got.iter().zip(&answers[0].1)) {
            assert_eq!(a, b, "{}: {n} processes answer differently from 1", v.def().name);
        }
    }
}

/// Kills the process when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// GETs `url` until it answers 200; its body.
fn get_ok(http: &reqwest::blocking::Client, url: &str, running: &mut Running) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(url).send()
            && r.status() == 200
        {
            return r.text().expect("body");
        }
        if let Ok(Some(status)) = running.0.try_wait() {
            panic!("the process exited ({status}) before {url} answered");
        }
        assert!(Instant::now() < deadline, "{url} never answered 200");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_rendered_serve_and_transcode_deployments_answer_their_probes_and_scrapes() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // Production's shape: Kafka, PostgreSQL and S3, from the Secret and the
    // ConfigMaps the manifests name.
    let database_url = runtime.block_on(common::fresh_postgres_url());
    let s3_endpoint = env("REELFLOW_TEST_S3_ENDPOINT");
    let s3_key = env("REELFLOW_TEST_S3_ACCESS_KEY_ID");
    let s3_secret = env("REELFLOW_TEST_S3_SECRET_ACCESS_KEY");
    let secrets = [
        ("database-url", database_url.as_str()),
        ("s3-endpoint", s3_endpoint.as_str()),
        ("s3-access-key-id", s3_key.as_str()),
        ("s3-secret-access-key", s3_secret.as_str()),
    ];
    let bucket = format!("rf-k8s-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let all = resources(&render("dev"));
    let dir = tempfile::tempdir().expect("tempdir");
    reelflow_serve::auth::Keyring::load_or_create(&dir.path().join("auth-keys.json")).expect("keys");
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    for (name, section, key, ip) in [
        ("reelflow-serve", "http", "listen", "127.0.20.1"),
        ("reelflow-transcode", "transcode", "listen", "127.0.21.1"),
    ] {
        let e = entrypoint(&all, "Deployment", name, &secrets);
        let addr = rebind(&e.config, section, key, ip);
        let port: u64 = addr.rsplit_once(':').expect("port").1.parse().expect("port");
        // The API serves /metrics to admins; Prometheus reads it on a port
        // of its own.
        let metrics_addr = match name {
            "reelflow-serve" => rebind(&e.config, "http", "metrics_listen", ip),
            _ => addr.clone(),
        };
        let edit = |c: &mut toml::Table| {
            set(c, section, key, addr.clone());
            if name == "reelflow-serve" {
                set(c, "http", "metrics_listen", metrics_addr.clone());
            }
        };
        let env = [
            ("REELFLOW_KAFKA_BROKERS", env("REELFLOW_TEST_KAFKA")),
            ("REELFLOW_S3_BUCKET", bucket.clone()),
        ];
        let mut running = Running(spawn(&e, &format!("{name}-0"), dir.path(), edit, &env));
        let ports = e.container["ports"].as_array().expect("ports");
        let port_of = |p: &Value| -> u64 {
            match p {
                Value::Number(n) => n.as_u64().expect("port"),
                Value::String(named) => ports
                    .iter()
                    .find(|q| q["name"] == *named)
                    .and_then(|q| q["containerPort"].as_u64())
                    .unwrap_or_else(|| panic!("{name}: no port named {named}")),
                other => panic!("{name}: port {other}"),
            }
        };
        let mut probed = 0;
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            let get = &e.container[probe]["httpGet"];
            if get.is_null() {
                continue;
            }
            assert_eq!(
                port_of(&get["port"]),
                port,
                "{name}: {probe} asks the port it listens on"
            );
            let path = get["path"].as_str().expect("path");
            get_ok(&http, &format!("http://{addr}{path}"), &mut running);
            probed += 1;
        }
        assert!(probed >= 2, "{name}: liveness and readiness are HTTP checks");
        let scraped: u64 = e.annotations["prometheus.io/port"]
            .as_str()
            .expect("port")
            .parse()
            .expect("number");
        let metrics_port: u64 = metrics_addr.rsplit_once(':').expect("port").1.parse().expect("port");
        assert_eq!(
            scraped, metrics_port,
            "{name}: Prometheus scrapes the port metrics are served on"
        );
        assert!(
            ports.iter().any(|p| p["containerPort"] == scraped),
            "{name}: the scraped port is one the container declares"
        );
        let path = e.annotations["prometheus.io/path"].as_str().expect("path");
        let metrics = get_ok(&http, &format!("http://{metrics_addr}{path}"), &mut running);
        if metrics_addr != addr {
            let r = http
                .get(format!("http://{addr}{path}"))
                .send()
                .expect("metrics on the API");
            assert_eq!(r.status(), 401, "{name}: /metrics on the API port needs an admin");
        }
        let family = match name {
            "reelflow-serve" => "# TYPE reelflow_delivery_cache_hits counter",
            _ => "# TYPE reelflow_transcode_jobs counter",
        };
        assert!(metrics.contains(family), "{name}: {path} has {family}:\n{metrics}");
    }
}

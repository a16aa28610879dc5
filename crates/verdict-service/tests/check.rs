//! `verdict check` against `verdict serve`: under every preset, audited with
//! the matching policy over the service's own OpenAPI document, nothing
//! fails (safe and write probes; the load probe with a small limit); and the
//! subcommand's exit codes and JSON report, as a CI pipeline would use them.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use verdict::Preset;
use verdict_check::finding::Verdict;
use verdict_check::{audit, report, Options};

/// A service under `preset` with a collection and a record named as the
/// checker fills path parameters, so the item routes have something to read.
async fn service(preset: &str) -> common::Server {
    let s = common::start(&["--preset", preset]).await;
    s.collection(json!({"name": "verdict-check-0"})).await;
    s.record(
        "verdict-check-0",
        json!({"id": "verdict-check-0", "title": "probe"}),
    )
    .await;
    s
}

#[tokio::test]
async fn verdict_serve_keeps_every_rule_under_every_preset() {
    for preset in Preset::all() {
        let name = preset.name();
        let s = service(name).await;
        let weak = s
            .token(json!({"scopes": ["read"], "collections": []}))
            .await;
        let doc: Value = s.admin("GET", "/openapi.json").send().await.json();
        let options = Options::new(&s.base(), name)
            .unwrap()
            .openapi(&doc)
            .unwrap()
            .tokens(Some(common::ADMIN), Some(&weak))
            .writes(true)
            .creates(true)
            .strict(true);
        let (findings, summary) = audit(options).await.unwrap();
        assert!(
            summary.ok,
            "under {name}:\n{}",
            report::table(&findings, &summary, false)
        );
        let judged = findings
            .iter()
            .filter(|f| f.result == Verdict::Pass)
            .count();
        assert!(judged > 200, "under {name} only {judged} passes");
    }
}

#[tokio::test]
async fn the_load_probe_finds_verdict_serves_rate_limit_under_every_preset() {
    for preset in Preset::all() {
        let name = preset.name();
        let s = service(name).await;
        let limited = s
            .token(json!({"scopes": ["read"], "rate_limit": {"requests": 3, "per_seconds": 60}}))
            .await;
        let options = Options::new(&s.base(), name)
            .unwrap()
            .path("/v1/collections")
            .tokens(Some(&limited), None)
            .load(10)
            .max_wait(Duration::ZERO)
            .strict(true);
        let (findings, summary) = audit(options).await.unwrap();
        let load = findings
            .iter()
            .find(|f| f.rule == "rate-limit-429")
            .unwrap();
        assert_eq!(load.result, Verdict::Pass, "{name}: {}", load.detail);
        // Each preset's own status (seed-001: 420; seed-002, without either: 503).
        let expected = preset.status_for(verdict::Situation::RateLimited).as_u16();
        assert_eq!(load.status, Some(expected), "{name}");
        assert!(summary.ok, "{}", report::table(&findings, &summary, false));
    }
}

#[tokio::test]
async fn the_subcommand_exits_0_1_or_2_and_writes_json_findings() {
    let s = service("standard").await;
    let run = |args: Vec<String>| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_verdict"))
            .arg("check")
            .args(args)
            .output()
            .await
            .unwrap()
    };
    // Clean against its own policy.
    let out = run(vec![
        s.base(),
        "--policy".into(),
        "standard".into(),
        "--path".into(),
        "/v1/collections".into(),
        "--token".into(),
        common::ADMIN.into(),
        "--format".into(),
        "json".into(),
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &report["findings"][0];
    for key in [
        "rule", "severity", "result", "method", "path", "status", "expected", "detail", "rfc",
        "curl",
    ] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
    assert_eq!(report["summary"]["ok"], true);

    // Against a policy it does not keep (seed-001 wants 400 for a missing token): 1 with --strict.
    let out = run(vec![
        s.base(),
        "--policy".into(),
        "seed-001".into(),
        "--path".into(),
        "/v1/collections".into(),
        "--token".into(),
        common::ADMIN.into(),
        "--strict".into(),
        "--format".into(),
        "junit".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(
        xml.contains("<failure") && xml.contains("auth-missing-401"),
        "{xml}"
    );

    // Nothing listening: 2.
    let out = run(vec!["http://127.0.0.1:9".into()]).await;
    assert_eq!(out.status.code(), Some(2));
    let out = run(vec![s.base(), "--policy".into(), "no-such-policy".into()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-policy"));
}

//! `okta-dcr-worker bench`, run small: both runs get a result for every request, the worker
//! makes one Okta call per provision (two with a group), and the benchmark's virtual host is
//! deleted afterwards.

use std::process::Command;

use serde_json::Value;

fn bench(extra: &[&str]) -> (Value, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_okta-dcr-worker"))
        .args(["bench", "--requests", "40", "--concurrency", "8", "--json"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary starts");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "bench failed ({}): {stdout}\n{stderr}",
        output.status
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("bench printed no JSON report ({error}): {stdout}"));
    (report, stderr)
}

fn run<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|run| run["run"] == name)
        .unwrap_or_else(|| panic!("no {name} run in {report}"))
}

fn vhosts() -> String {
    let output = Command::new("rabbitmqctl")
        .args(["list_vhosts", "--quiet"])
        .output()
        .expect("rabbitmqctl runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn bench_reports_baseline_and_worker() {
    let (report, _) = bench(&[]);
    for name in ["baseline", "worker"] {
        let measured = run(&report, name);
        assert_eq!(measured["successes"], 40, "{measured}");
        assert_eq!(measured["dead_letters"], 0, "{measured}");
        assert_eq!(measured["duplicate_results"], 0, "{measured}");
        assert!(measured["requests_per_second"].as_f64().unwrap() > 0.0);
        assert!(measured["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
        assert!(
            measured["peak_rss_kib"].as_u64().unwrap() > 1024,
            "the {name} process's memory was not read: {measured}"
        );
    }
    assert!(run(&report, "baseline").get("okta").is_none());
    let okta = &run(&report, "worker")["okta"];
    assert_eq!(okta["calls"], 40, "{okta}");
    assert_eq!(okta["rate_limited"], 0, "{okta}");
    assert!(report["worker_to_baseline"].as_f64().unwrap() > 0.0);

    let pid_tag = "okta-dcr-bench-";
    let left: Vec<_> = vhosts()
        .lines()
        .filter(|line| line.starts_with(pid_tag))
        .map(str::to_owned)
        .collect();
    // Other benchmarks may run at the same time. A vhost is named after its bench process, so
    // only the vhosts of running processes may remain.
    for vhost in left {
        let pid = vhost.trim_start_matches(pid_tag);
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "vhost {vhost} outlived its bench process"
        );
    }
}

#[test]
fn group_assignment_costs_a_second_okta_call() {
    let (report, _) = bench(&[
        "--mode",
        "worker",
        "--group-id",
        "00g1benchgroup",
        "--workers",
        "2",
    ]);
    assert!(report["runs"].as_array().unwrap().len() == 1);
    let worker = run(&report, "worker");
    assert_eq!(worker["successes"], 40, "{worker}");
    assert_eq!(worker["okta"]["calls"], 80, "{worker}");
    assert!(report["worker_to_baseline"].is_null());
}

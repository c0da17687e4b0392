//! Process helpers shared by the benchmarks: CPU time of a process and waiting for `/health`.

use std::time::Duration;

/// utime+stime of a process (`self` or a pid), in clock ticks (0 when it cannot be read).
pub fn cpu_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0 };
    // Fields after the parenthesised command name, which may contain spaces: state is
    // field 3, utime field 14, stime field 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return 0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// Waits (up to a minute) until `url` answers `GET /health` with a success.
pub async fn wait_healthy(url: &str) {
    let http = reqwest::Client::new();
    for _ in 0..1200 {
        if let Ok(r) = http.get(format!("{url}/health")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not become healthy");
}

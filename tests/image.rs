//! The container image: no Docker engine runs here, so this reads the `Dockerfile` and checks
//! it against what runs it. The image builds the crate's `miroir` binary (release, locked) in
//! one stage and copies it into a minimal non-root runtime stage whose `ENTRYPOINT` is that
//! binary; the chart's Deployment leaves the entrypoint alone and passes `operator` and flags
//! the binary accepts; the default `CMD` is a subcommand with flags that exist; the chart,
//! the plain manifest and the README name the same image.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// One Dockerfile instruction: keyword (upper case) and its arguments, continuation lines
/// joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        let (part, continued) = match t.strip_suffix('\\') {
            Some(p) => (p.trim_end(), true),
            None => (t, false),
        };
        current.push_str(part);
        current.push(' ');
        if !continued {
            let s = current.trim().to_string();
            current.clear();
            if s.is_empty() {
                continue;
            }
            let (k, rest) = s.split_once(' ').unwrap_or((&s, ""));
            out.push((k.to_ascii_uppercase(), rest.trim().to_string()));
        }
    }
    out
}

/// The instructions of each stage (split at `FROM`).
fn stages(ins: &[(String, String)]) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = Vec::new();
    for i in ins {
        if i.0 == "FROM" {
            out.push(Vec::new());
        }
        if let Some(s) = out.last_mut() {
            s.push(i.clone());
        }
    }
    out
}

/// An exec-form JSON array (`["a", "b"]`).
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not an exec-form array ({e}): {args}"))
}

fn help(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_miroir")).args(args).output().unwrap();
    assert!(out.status.success(), "miroir {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn has_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        let next = help[i + flag.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// Subcommand names `miroir --help` lists.
fn subcommands() -> Vec<String> {
    let h = help(&["--help"]);
    let start = h.find("Commands:").expect("`miroir --help` lists commands");
    h[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn instruction_parser_joins_continuations_and_skips_comments() {
    let ins = instructions("# c\nFROM a AS b\nRUN x \\\n && y\n\nENTRYPOINT [\"/m\"]\n");
    assert_eq!(ins, [("FROM".into(), "a AS b".into()), ("RUN".into(), "x && y".into()), ("ENTRYPOINT".into(), "[\"/m\"]".into())]);
    assert_eq!(stages(&ins).len(), 1);
}

#[test]
fn dockerfile_builds_the_binary_the_chart_runs() {
    let ins = instructions(&read("Dockerfile"));
    let stages = stages(&ins);
    assert!(stages.len() >= 2, "a multi-stage build (build, then a minimal runtime)");
    let build = &stages[0];
    let runtime = stages.last().unwrap();
    let build_name = build[0].1.split_whitespace().last().unwrap().to_string();
    assert!(build[0].1.to_ascii_uppercase().contains(" AS "), "the build stage is named: {:?}", build[0]);

    // The build stage compiles the crate's binary (the [[bin]] of Cargo.toml).
    let cargo: toml_like::Bin = toml_like::bin(&read("Cargo.toml"));
    let run = build.iter().filter(|(k, _)| k == "RUN").map(|(_, a)| a.as_str()).collect::<Vec<_>>().join(" && ");
    assert!(run.contains("cargo build --release --locked"), "a locked release build: {run}");
    assert!(run.contains(&format!("--bin {}", cargo.name)), "builds the `{}` binary: {run}", cargo.name);

    // The runtime stage: the binary copied from the build stage is the entrypoint.
    let copy = runtime.iter().find(|(k, a)| k == "COPY" && a.starts_with(&format!("--from={build_name} "))).expect("COPY --from=<build stage>");
    let parts: Vec<&str> = copy.1.split_whitespace().collect();
    assert!(parts[1].ends_with(&format!("/target/release/{}", cargo.name)), "copies the release binary: {copy:?}");
    let installed = parts[2];
    let entry = runtime.iter().find(|(k, _)| k == "ENTRYPOINT").expect("an ENTRYPOINT");
    assert_eq!(exec_form(&entry.1), [installed.to_string()], "the entrypoint is the copied binary, in exec form");
    assert!(!runtime[0].1.contains("rust:"), "the runtime stage is not the toolchain image: {:?}", runtime[0]);

    // Non-root, and the same uid the chart runs as.
    let user = runtime.iter().rev().find(|(k, _)| k == "USER").expect("a USER in the runtime stage");
    let uid: u32 = user.1.split(':').next().unwrap().parse().expect("a numeric uid (runAsNonRoot needs one)");
    assert_ne!(uid, 0);
    let values: serde_json::Value = serde_yaml_ng::from_str(&read("charts/miroir/values.yaml")).unwrap();
    assert_eq!(values["podSecurityContext"]["runAsUser"], uid, "the chart runs as the image's user");
    assert_eq!(values["securityContext"]["readOnlyRootFilesystem"], true);

    // The default command is a subcommand whose flags exist.
    let cmd = exec_form(&runtime.iter().find(|(k, _)| k == "CMD").expect("a CMD").1);
    let subs = subcommands();
    assert!(subs.contains(&cmd[0]), "CMD runs `{}`, not one of {subs:?}", cmd[0]);
    let sub_help = help(&[&cmd[0], "--help"]);
    for flag in cmd.iter().filter(|a| a.starts_with("--")) {
        assert!(has_flag(&sub_help, flag), "`miroir {}` has no {flag}", cmd[0]);
    }
}

#[test]
fn the_chart_and_manifests_run_the_image_entrypoint_with_the_operator_subcommand() {
    let subs = subcommands();
    assert!(subs.iter().any(|s| s == "operator") && subs.iter().any(|s| s == "serve"), "{subs:?}");
    let deployment = read("charts/miroir/templates/deployment.yaml");
    assert!(!deployment.contains("command:"), "the chart must not replace the image's entrypoint");
    let args_at = deployment.find("args:\n").expect("deployment.yaml passes args");
    let first = deployment[args_at..].lines().nth(1).unwrap().trim();
    assert_eq!(first, "- operator", "the first argument is the subcommand");

    let values: serde_json::Value = serde_yaml_ng::from_str(&read("charts/miroir/values.yaml")).unwrap();
    let repo = values["image"]["repository"].as_str().unwrap().to_string();
    let manifest = read("config/k8s/operator.yaml");
    assert!(manifest.contains(&format!("image: {repo}:")), "config/k8s/operator.yaml runs {repo}");
    assert!(manifest.contains("args: [operator,"), "config/k8s/operator.yaml runs `miroir operator`");
    let readme = read("README.md");
    assert!(readme.contains(&format!("docker build -t {repo}:")), "README says how {repo} is built");
    assert!(readme.contains(&format!("docker push {repo}:")), "README says how {repo} is published");
    let docker = read("Dockerfile");
    assert!(docker.contains(&format!("docker build -t {repo}:")), "the Dockerfile's header names the image");
}

/// The `[[bin]]` name of Cargo.toml, read without a TOML parser.
mod toml_like {
    pub struct Bin {
        pub name: String,
    }

    pub fn bin(cargo_toml: &str) -> Bin {
        let at = cargo_toml.find("[[bin]]").expect("Cargo.toml declares a [[bin]]");
        let name = cargo_toml[at..]
            .lines()
            .find_map(|l| l.trim().strip_prefix("name = ").map(|v| v.trim_matches('"').to_string()))
            .expect("the [[bin]] has a name");
        Bin { name }
    }
}

//! The `saps` binary as an operator sees it: exit codes, one-line errors, help text.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

fn saps(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_saps"))
        .args(args)
        .env_remove("RUST_LOG")
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run saps")
}

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp_config(contents: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    f
}

#[test]
fn check_config_accepts_every_example_without_environment() {
    for (name, summary) in [
        ("single-veth.toml", "ok: 1 port, 5 services"),
        ("tap-demo.toml", "ok: 1 port, 2 services"),
        ("gateway.toml", "ok: 1 port, 2 services"),
    ] {
        let out = saps(&["check-config", "--no-env", &example(name)]);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim_end(), summary, "{name}");
    }
}

#[test]
fn bad_config_is_one_line_naming_the_key_with_exit_2() {
    let f = temp_config(
        "[[port]]\nname = \"ext\"\nbackend = \"memory\"\nipv4 = \"10.0.0.2/24\"\n\
         [[service]]\nkind = \"http\"\nport = 80\non = \"wan\"\n",
    );
    for extra in [&[][..], &["--no-env"][..]] {
        let mut args = vec!["check-config", f.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = saps(&args);
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty());
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err:?}");
        assert!(
            err.starts_with("error: service[0].on: no port named \"wan\"; use one of: ext"),
            "{err:?}"
        );
        assert!(!err.contains("panicked") && !err.contains("backtrace"));
    }
}

#[test]
fn garbage_and_missing_files_fail_cleanly() {
    let f = temp_config("this is = = not toml\n\u{0}\u{1}");
    let out = saps(&["check-config", f.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.starts_with("error: TOML syntax error at line 1"),
        "{err:?}"
    );

    let out = saps(&["check-config", "/nonexistent/dir/saps.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains("/nonexistent/dir/saps.toml"), "{err:?}");

    let out = saps(&["run", "--config", "/nonexistent/dir/saps.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read config file"));
}

#[test]
fn environment_check_runs_without_no_env() {
    // The interface does not exist here: the syntax is fine, the environment is not.
    let f = temp_config(
        "[[port]]\nname = \"ext\"\nbackend = \"af_packet\"\niface = \"nosuchif9\"\nipv4 = \"10.0.0.2/24\"\n\
         [telemetry]\nenabled = false\n",
    );
    let path = f.path().to_str().unwrap();
    assert_eq!(
        saps(&["check-config", "--no-env", path]).status.code(),
        Some(0)
    );
    let out = saps(&["check-config", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr)
        .starts_with("error: port[0].iface: no network interface named \"nosuchif9\""));
}

#[test]
fn run_rejects_the_in_process_memory_backend_in_one_line() {
    let f = temp_config(
        "[[port]]\nname = \"m\"\nbackend = \"memory\"\nipv4 = \"10.0.0.2/24\"\n[telemetry]\nenabled = false\n",
    );
    let out = saps(&[
        "--log-level",
        "error",
        "run",
        "--config",
        f.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: port m: backend \"memory\" is for in-process tests"),
        "{err}"
    );
}

#[test]
fn help_lists_the_subcommands() {
    let out = saps(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for sub in ["run", "check-config", "demo", "--log-level"] {
        assert!(help.contains(sub), "{sub} missing from:\n{help}");
    }
    let out = saps(&["check-config", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(
        help.contains("--no-env") && help.contains("ok: N ports, M services"),
        "{help}"
    );
    let out = saps(&["run", "--help"]);
    assert!(text(&out.stdout).contains("--config"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(saps(&[]).status.code(), Some(2));
    assert_eq!(saps(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(saps(&["run"]).status.code(), Some(2));
}

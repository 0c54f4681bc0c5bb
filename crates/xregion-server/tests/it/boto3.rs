//! boto3 tests against a real region: a smoke test (`tests/python/smoke_boto3.py`) and the
//! shared runner other modules use for their Python scripts. They run only when
//! `python3 -c "import boto3"` works; without boto3 they fail under CI (`CI=true`, where boto3
//! is installed) and are skipped, with a message, elsewhere.

use std::process::Command;

use crate::common::*;

/// True when boto3 can be used; false (after printing why) when the test should be skipped.
/// Panics under `CI=true`, where `.ci/run` installs boto3.
pub(crate) fn boto3_or_skip(what: &str) -> bool {
    let available = Command::new("python3").args(["-c", "import boto3"]).output().is_ok_and(|o| o.status.success());
    if !available {
        let msg = format!("{what} needs `python3` with `boto3` (pip install boto3)");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}: not available, and CI=true requires it");
        }
        eprintln!("SKIPPED: {msg}");
    }
    available
}

/// Runs `tests/python/<script>` with a fresh bucket name (from `bucket_stem`) against `region`
/// and asserts that it succeeded and printed `passed_marker`.
pub(crate) fn run_boto3_script(region: &TestRegion, script: &str, bucket_stem: &str, passed_marker: &str) {
    run_boto3(region, script, &bucket_name(bucket_stem), passed_marker, &[]);
}

/// [`run_boto3_script`] on a given bucket, with more environment variables for the script.
pub(crate) fn run_boto3(region: &TestRegion, script: &str, bucket: &str, passed_marker: &str, env: &[(&str, &str)]) {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("python3")
        .arg(&path)
        .arg(bucket)
        .envs(env.iter().copied())
        .env("XREGION_ENDPOINT", region.endpoint())
        .env("XREGION_TEST_REGION", region.name())
        .env("PYTHONPATH", localhost_resolver())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains(passed_marker), "{stdout}");
}

#[test]
fn boto3_smoke() {
    if !boto3_or_skip("boto3 smoke test") {
        return;
    }
    let region = TestRegion::start("us-east-1", &[]);
    run_boto3_script(&region, "smoke_boto3.py", "boto3", "boto3 smoke test passed");
}

//! boto3 smoke test (`tests/python/smoke_boto3.py`) against a real region. Runs only when
//! `python3 -c "import boto3"` works; without boto3 it fails under CI (`CI=true`, where boto3
//! is installed) and is skipped, with a message, elsewhere.

use std::process::Command;

use crate::common::*;

fn boto3_available() -> bool {
    Command::new("python3").args(["-c", "import boto3"]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn boto3_smoke() {
    if !boto3_available() {
        let msg = "boto3 smoke test needs `python3` with `boto3` (pip install boto3)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}: not available, and CI=true requires it");
        }
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let region = TestRegion::start("us-east-1", &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/smoke_boto3.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(bucket_name("boto3"))
        .env("XREGION_ENDPOINT", region.endpoint())
        .env("XREGION_TEST_REGION", region.name())
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
    assert!(output.status.success(), "boto3 smoke test failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("boto3 smoke test passed"), "{stdout}");
}

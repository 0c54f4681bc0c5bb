//! Bucket-name and key validation must never panic, and accepted names obey the rules.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xregion_types::{BucketName, ObjectKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(b) = BucketName::parse(s) {
            assert!((3..=63).contains(&b.as_str().len()));
            assert!(!b.as_str().contains(".."));
        }
        if let Ok(k) = ObjectKey::parse(s) {
            assert!(!k.as_str().is_empty() && k.as_str().len() <= 1024);
        }
    }
});

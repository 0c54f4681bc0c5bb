//! VersionId::parse must never panic, and whatever it accepts must round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xregion_types::VersionId;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(id) = VersionId::parse(s)
    {
        assert_eq!(id.as_str(), s);
        if !id.is_null() {
            let stamp = id.stamp().expect("a parsed id has a stamp");
            assert_eq!(VersionId::parse(id.as_str()).ok().and_then(|v| v.stamp()), Some(stamp));
        }
    }
});

//! SSE-C request headers and the sealed-replica headers come from the network: parsing them
//! must never panic, and what is accepted is well formed (a 256-bit key whose digest was
//! checked; pieces that print back to the headers they came from).
#![no_main]
use libfuzzer_sys::fuzz_target;
use xregion_core::sealed::SealedVersion;
use xregion_crypto::CustomerKey;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut fields = text.splitn(3, '\n');
    let (a, b, c) = (fields.next(), fields.next(), fields.next());
    if let Ok(Some(key)) = CustomerKey::from_headers(a, b, c) {
        assert_eq!(a, Some("AES256"));
        let (_, wrapped_key) = key.new_data_key().expect("data key");
        assert!(key.unwrap_key(&wrapped_key).is_ok());
        assert!(!key.key_md5().is_empty() && !key.key_base64().is_empty());
    }
    if let (Some(k), Some(p)) = (a, b)
        && let Ok(sealed) = SealedVersion::parse(k, p)
    {
        let again = SealedVersion::parse(&sealed.key_header(), &sealed.pieces_header()).expect("reparse");
        assert_eq!(again, sealed);
        assert!(sealed.sealed_size() >= sealed.size());
    }
});

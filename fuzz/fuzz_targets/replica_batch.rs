//! The batch replica body (`POST /_xregion/replicate/<bucket>`, network input) must never make
//! the decoder panic; what it accepts re-encodes to the same bytes, and every entry's
//! single-object replica write can be derived without panicking.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use xregion_core::replica_batch::{decode, decode_results, encode};

fuzz_target!(|data: &[u8]| {
    let mut framed = b"XRB1".to_vec();
    framed.extend_from_slice(data);
    for body in [Bytes::from(framed), Bytes::copy_from_slice(data)] {
        if let Ok(entries) = decode(&body) {
            assert_eq!(decode(&Bytes::from(encode(&entries))).ok(), Some(entries.clone()));
            for (entry, _) in &entries {
                let _ = entry.replica_put("bucket");
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_results(text);
    }
});

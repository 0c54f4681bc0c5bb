//! Sealed bytes read from disk (encryption at rest) must never make opening panic, whatever
//! they hold and wherever a read starts; only bytes that were sealed with the key open, and
//! they open to what was sealed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use xregion_crypto::{MasterKey, SEALED_CHUNK_BYTES};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let master = MasterKey::from_hex(&"7e".repeat(32)).expect("master key");
    let (key, wrapped) = master.new_data_key().expect("data key");
    let cipher = key.segment(b"fuzz").expect("piece key");
    // Arbitrary bytes as a sealed piece, and as a run of chunks of a piece of any length.
    let _ = cipher.open_all(bytes);
    let mut buf = bytes.to_vec();
    let first = u64::from(selector % 4);
    let _ = cipher.open_chunks(first, first + u64::from(selector / 4 % 4), &mut buf);
    // Arbitrary bytes as a wrapped data key.
    let _ = master.unwrap_key(1, bytes);
    // What was sealed opens to itself, also a run starting at any whole chunk.
    let sealed = cipher.seal_all(bytes).expect("seal");
    assert_eq!(cipher.open_all(&sealed).expect("open"), bytes);
    let total = sealed.len().div_ceil(SEALED_CHUNK_BYTES) as u64;
    if total > 0 {
        let start = u64::from(selector) % total;
        let mut run = sealed[start as usize * SEALED_CHUNK_BYTES..].to_vec();
        let n = cipher.open_chunks(start, total, &mut run).expect("open run");
        assert_eq!(&run[..n], &bytes[start as usize * xregion_crypto::CHUNK_BYTES..]);
    }
    assert!(master.unwrap_key(1, &wrapped).is_ok());
});

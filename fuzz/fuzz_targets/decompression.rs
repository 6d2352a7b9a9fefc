//! Compressed bodies, any bytes: decoding never exceeds its cap, and whatever decodes agrees
//! with flate2 over C zlib (the inflater Python's and Node's readers use), a `deflate` body
//! does not also read as raw DEFLATE, and it survives re-encoding.
#![no_main]

use std::io::Read;

use consent_gate::encoding::{DecodeError, Encoding};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mode, raw @ ..] = data else { return };
    let encoding = if mode & 1 == 0 { Encoding::Gzip } else { Encoding::Deflate };
    let limit = [64usize, 4096, 1 << 20][usize::from(mode >> 1) % 3];
    match encoding.decode(raw, limit) {
        Ok(out) => {
            assert!(out.len() <= limit);
            let mut reference = Vec::new();
            let read = match encoding {
                Encoding::Gzip => flate2::read::MultiGzDecoder::new(raw).read_to_end(&mut reference),
                _ => flate2::read::ZlibDecoder::new(raw).read_to_end(&mut reference),
            };
            assert!(read.is_ok(), "flate2 refuses what the filter decoded");
            assert_eq!(reference, out, "flate2 decodes to other bytes");
            if encoding == Encoding::Deflate {
                // Readers that take `deflate` for raw DEFLATE must not find another body in it.
                let mut raw_reading = Vec::new();
                let raw_read = flate2::read::DeflateDecoder::new(raw).read_to_end(&mut raw_reading);
                assert!(raw_read.is_err(), "the body also reads as raw DEFLATE");
            }
            let again = encoding.encode(out.clone());
            assert_eq!(encoding.decode(&again, limit), Ok(out));
        }
        Err(DecodeError::TooLarge | DecodeError::Corrupt) => {}
    }
});

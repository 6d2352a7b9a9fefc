//! Content-Encoding: compressed bodies are decompressed to be judged (never past the size cap),
//! and a rewritten body is compressed again the same way. Anything else is refused, unjudged.

use std::io::{BufRead, Read, Write};

use flate2::bufread::{MultiGzDecoder, ZlibDecoder};
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    /// HTTP `deflate`: the zlib format (RFC 1950).
    Deflate,
}

/// The body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Decompressed, it is larger than the cap.
    TooLarge,
    /// Corrupt, truncated, or followed by trailing bytes.
    Corrupt,
}

impl Encoding {
    /// Reads a `content-encoding` header value. `None` for encodings the filter cannot judge
    /// (`br`, `zstd`, unknown names, several stacked codings).
    pub fn from_header(value: Option<&str>) -> Option<Encoding> {
        let Some(value) = value else {
            return Some(Encoding::Identity);
        };
        let v = value.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("identity") {
            Some(Encoding::Identity)
        } else if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") {
            Some(Encoding::Gzip)
        } else if v.eq_ignore_ascii_case("deflate") {
            Some(Encoding::Deflate)
        } else {
            None
        }
    }

    /// Decompresses `raw`; the result never exceeds `limit` bytes (memory stays bounded even
    /// for a compression bomb).
    pub fn decode(self, raw: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
        match self {
            Encoding::Identity => Ok(raw.to_vec()),
            Encoding::Gzip => {
                // Several gzip members are one body, as most HTTP servers read it.
                let mut d = MultiGzDecoder::new(raw);
                let out = read_capped(&mut d, limit)?;
                let mut rest: &[u8] = d.get_ref();
                ensure_consumed(&mut rest)?;
                Ok(out)
            }
            Encoding::Deflate => {
                let mut d = ZlibDecoder::new(raw);
                let out = read_capped(&mut d, limit)?;
                let mut rest: &[u8] = d.get_ref();
                ensure_consumed(&mut rest)?;
                Ok(out)
            }
        }
    }

    /// Compresses a rewritten body with this encoding.
    pub fn encode(self, plain: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        match self {
            Encoding::Identity => Ok(plain.to_vec()),
            Encoding::Gzip => {
                let mut e = GzEncoder::new(Vec::new(), Compression::default());
                e.write_all(plain)?;
                e.finish()
            }
            Encoding::Deflate => {
                let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
                e.write_all(plain)?;
                e.finish()
            }
        }
    }
}

fn read_capped(d: &mut impl Read, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let cap = (limit as u64).saturating_add(1);
    d.take(cap)
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::Corrupt)?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge);
    }
    // A truncated stream ends without error in some decoders: require the real end.
    let mut probe = [0u8; 1];
    match d.read(&mut probe) {
        Ok(0) => Ok(out),
        Ok(_) => Err(DecodeError::TooLarge),
        Err(_) => Err(DecodeError::Corrupt),
    }
}

/// Bytes after the compressed stream would be read differently by different servers.
fn ensure_consumed(rest: &mut impl BufRead) -> Result<(), DecodeError> {
    match rest.fill_buf() {
        Ok([]) => Ok(()),
        _ => Err(DecodeError::Corrupt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_header() {
        assert_eq!(Encoding::from_header(None), Some(Encoding::Identity));
        assert_eq!(
            Encoding::from_header(Some("identity")),
            Some(Encoding::Identity)
        );
        assert_eq!(Encoding::from_header(Some(" GZIP ")), Some(Encoding::Gzip));
        assert_eq!(Encoding::from_header(Some("x-gzip")), Some(Encoding::Gzip));
        assert_eq!(
            Encoding::from_header(Some("deflate")),
            Some(Encoding::Deflate)
        );
        for other in [
            "br",
            "zstd",
            "compress",
            "gzip, gzip",
            "gzip,br",
            "deflate, gzip",
        ] {
            assert_eq!(Encoding::from_header(Some(other)), None, "{other}");
        }
    }

    #[test]
    fn round_trips() {
        let body = br#"{"batch":[{"type":"track"}]}"#.repeat(50);
        for enc in [Encoding::Identity, Encoding::Gzip, Encoding::Deflate] {
            let packed = enc.encode(&body).unwrap();
            assert_eq!(enc.decode(&packed, body.len()).unwrap(), body, "{enc:?}");
            if enc != Encoding::Identity {
                assert!(packed.len() < body.len());
            }
        }
    }

    #[test]
    fn caps_decompressed_size() {
        let bomb = Encoding::Gzip.encode(&vec![b' '; 10_000_000]).unwrap();
        assert!(bomb.len() < 20_000);
        assert_eq!(
            Encoding::Gzip.decode(&bomb, 1_048_576),
            Err(DecodeError::TooLarge)
        );
        let z = Encoding::Deflate.encode(&vec![b' '; 2_000]).unwrap();
        assert_eq!(
            Encoding::Deflate.decode(&z, 1_999),
            Err(DecodeError::TooLarge)
        );
        assert_eq!(
            Encoding::Deflate.decode(&z, 2_000).map(|v| v.len()),
            Ok(2_000)
        );
    }

    #[test]
    fn rejects_corrupt_truncated_and_trailing_data() {
        let body = br#"{"type":"track","event":"x"}"#.repeat(20);
        for enc in [Encoding::Gzip, Encoding::Deflate] {
            let packed = enc.encode(&body).unwrap();
            let truncated = &packed[..packed.len() - 5];
            assert_eq!(
                enc.decode(truncated, 1 << 20),
                Err(DecodeError::Corrupt),
                "{enc:?} truncated"
            );
            let mut trailing = packed.clone();
            trailing.extend_from_slice(b"junk");
            assert_eq!(
                enc.decode(&trailing, 1 << 20),
                Err(DecodeError::Corrupt),
                "{enc:?} trailing"
            );
            assert_eq!(
                enc.decode(&body, 1 << 20),
                Err(DecodeError::Corrupt),
                "{enc:?} plain"
            );
            assert_eq!(
                enc.decode(b"", 1 << 20),
                Err(DecodeError::Corrupt),
                "{enc:?} empty"
            );
        }
    }
}

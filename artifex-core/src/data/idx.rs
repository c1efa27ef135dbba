//! The IDX file format of MNIST: a magic number, big-endian dimensions, then the raw values.
//!
//! Files may be gzip-compressed or not; the difference is detected from the first bytes
//! (gzip's `1f 8b`), never from the file name.

use std::io::{Cursor, Read};
use std::path::Path;

use crate::{DataError, Result};

/// The IDX type code of unsigned bytes, the only element type MNIST uses.
const UBYTE: u8 = 0x08;
/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The content of one IDX file of unsigned bytes: its dimensions and row-major values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// The values, `dims.iter().product()` of them.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes, gzip-compressed or raw.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: name.clone(),
        source,
    })?;
    parse_idx(std::io::BufReader::new(file), &name)
}

/// Parses IDX content from any reader; `source` names it in errors (a path or a label).
pub fn parse_idx(mut reader: impl Read, source: &str) -> Result<IdxArray> {
    let corrupt = |reason: String| DataError::corrupt(source, reason);
    let mut head = [0u8; 2];
    let got = read_up_to(&mut reader, &mut head).map_err(|e| corrupt(e.to_string()))?;
    let rest = Cursor::new(head[..got].to_vec()).chain(reader);
    if got == 2 && head == GZIP_MAGIC {
        parse_raw(flate2::read::MultiGzDecoder::new(rest), source, true)
    } else {
        parse_raw(rest, source, false)
    }
}

/// Parses uncompressed IDX content (after gzip decoding when `gz`).
fn parse_raw(mut reader: impl Read, source: &str, gz: bool) -> Result<IdxArray> {
    let corrupt = |reason: String| DataError::corrupt(source, reason);
    let what = if gz { "gzip-compressed IDX" } else { "IDX" };
    let mut magic = [0u8; 4];
    read_exact(
        &mut reader,
        &mut magic,
        "the 4-byte magic number",
        what,
        source,
    )?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(corrupt(format!(
            "bad magic number {:02x}{:02x}{:02x}{:02x}: an {what} file starts with two zero bytes",
            magic[0], magic[1], magic[2], magic[3]
        ))
        .into());
    }
    if magic[2] != UBYTE {
        return Err(corrupt(format!(
            "element type 0x{:02x} is not supported (only unsigned bytes, 0x08)",
            magic[2]
        ))
        .into());
    }
    let ndims = usize::from(magic[3]);
    if ndims == 0 {
        return Err(corrupt("the header declares zero dimensions".into()).into());
    }
    let mut dims = Vec::with_capacity(ndims);
    for i in 0..ndims {
        let mut word = [0u8; 4];
        let label = format!("dimension {i} of {ndims}");
        read_exact(&mut reader, &mut word, &label, what, source)?;
        dims.push(u32::from_be_bytes(word) as usize);
    }
    let len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| corrupt(format!("dimensions {dims:?} overflow")))?;
    // Grow while reading instead of trusting the header with one huge allocation.
    let mut data = Vec::with_capacity(len.min(1 << 24));
    (&mut reader)
        .take(len as u64)
        .read_to_end(&mut data)
        .map_err(|e| corrupt(format!("reading the payload: {e}")))?;
    if data.len() != len {
        return Err(corrupt(format!(
            "truncated payload: dimensions {dims:?} need {len} bytes, found {}",
            data.len()
        ))
        .into());
    }
    let mut extra = [0u8; 1];
    let trailing = read_up_to(&mut reader, &mut extra)
        .map_err(|e| corrupt(format!("after the payload: {e}")))?;
    if trailing != 0 {
        return Err(corrupt(format!(
            "trailing bytes after the {len}-byte payload of dimensions {dims:?}"
        ))
        .into());
    }
    Ok(IdxArray { dims, data })
}

/// Fills `buf` as far as the reader allows; returns how many bytes were read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads exactly `buf.len()` bytes of the header, naming the field on failure.
fn read_exact(
    reader: &mut impl Read,
    buf: &mut [u8],
    field: &str,
    what: &str,
    source: &str,
) -> Result<()> {
    let got = read_up_to(reader, buf)
        .map_err(|e| DataError::corrupt(source, format!("reading {field}: {e}")))?;
    if got < buf.len() {
        return Err(DataError::corrupt(
            source,
            format!("truncated header: the {what} file ends before {field}"),
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;
    use crate::Error;

    /// A raw IDX buffer of unsigned bytes.
    pub(crate) fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, UBYTE, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn reason(err: Error) -> String {
        match err {
            Error::Data(DataError::Corrupt { path, reason }) => {
                assert_eq!(path, "buf");
                reason
            }
            other => panic!("expected a Corrupt error, got {other:?}"),
        }
    }

    #[test]
    fn raw_and_gzip_parse_the_same() {
        let raw = idx_bytes(&[2, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]);
        let a = parse_idx(&raw[..], "buf").unwrap();
        assert_eq!(a.dims, [2, 2, 3]);
        assert_eq!(a.data[11], 255);
        let b = parse_idx(&gzip(&raw)[..], "buf").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn one_dimensional_labels() {
        let a = parse_idx(&idx_bytes(&[3], &[7, 0, 9])[..], "buf").unwrap();
        assert_eq!((a.dims, a.data), (vec![3], vec![7, 0, 9]));
    }

    #[test]
    fn bad_magic() {
        let mut raw = idx_bytes(&[1], &[1]);
        raw[0] = 0x50;
        assert!(reason(parse_idx(&raw[..], "buf").unwrap_err()).contains("bad magic"));
        let mut raw = idx_bytes(&[1], &[1]);
        raw[2] = 0x0d; // float
        assert!(reason(parse_idx(&raw[..], "buf").unwrap_err()).contains("0x0d"));
        let raw = [0u8, 0, UBYTE, 0];
        assert!(reason(parse_idx(&raw[..], "buf").unwrap_err()).contains("zero dimensions"));
    }

    #[test]
    fn truncated_header_and_payload() {
        let raw = idx_bytes(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        for cut in [0, 3, 6, 10] {
            let r = reason(parse_idx(&raw[..cut], "buf").unwrap_err());
            assert!(r.contains("truncated header"), "{cut}: {r}");
        }
        let r = reason(parse_idx(&raw[..raw.len() - 1], "buf").unwrap_err());
        assert!(r.contains("need 6 bytes, found 5"), "{r}");
        let mut long = raw.clone();
        long.push(0);
        assert!(reason(parse_idx(&long[..], "buf").unwrap_err()).contains("trailing"));
    }

    #[test]
    fn truncated_gzip_stream() {
        let gz = gzip(&idx_bytes(&[4, 4], &[9; 16]));
        let r = reason(parse_idx(&gz[..gz.len() - 12], "buf").unwrap_err());
        assert!(r.contains("gzip") || r.contains("payload"), "{r}");
        let r = reason(parse_idx(&gz[..5], "buf").unwrap_err());
        assert!(!r.is_empty());
    }

    #[test]
    fn huge_declared_dims_do_not_allocate() {
        let raw = idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[1, 2, 3]);
        let r = reason(parse_idx(&raw[..], "buf").unwrap_err());
        assert!(r.contains("overflow") || r.contains("truncated"), "{r}");
        let raw = idx_bytes(&[1 << 30, 4], &[1, 2, 3]);
        assert!(reason(parse_idx(&raw[..], "buf").unwrap_err()).contains("truncated"));
    }

    #[test]
    fn missing_file_is_an_io_error() {
        let err = read_idx(Path::new("/nonexistent/x-idx1-ubyte")).unwrap_err();
        assert!(matches!(err, Error::Data(DataError::Io { .. })), "{err}");
    }
}

//! The IDX format of MNIST and Fashion-MNIST (`*-idx3-ubyte` images,
//! `*-idx1-ubyte` labels), raw or gzip-compressed.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use crate::error::DataError;

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Images as bytes, row-major, one after another.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

/// A file's bytes, gunzipped when they start with the gzip magic; `origin`
/// names the file in errors.
fn contents<'a>(raw: &'a [u8], origin: &Path) -> Result<Cow<'a, [u8]>, DataError> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::new();
    GzDecoder::new(raw)
        .read_to_end(&mut out)
        .map_err(|err| DataError::io(origin, err))?;
    Ok(Cow::Owned(out))
}

fn header(bytes: &[u8], words: usize, path: &Path) -> Result<Vec<u32>, DataError> {
    if bytes.len() < words * 4 {
        return Err(DataError::format(
            path,
            "the file is shorter than its header",
        ));
    }
    Ok(bytes[..words * 4]
        .chunks(4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        .collect())
}

/// The images of an IDX image file's bytes (raw or gzip); `path` names the
/// file in errors.
pub fn images(raw: &[u8], path: &Path) -> Result<Images, DataError> {
    let bytes = contents(raw, path)?;
    let head = header(&bytes, 4, path)?;
    if head[0] != IMAGES_MAGIC {
        return Err(DataError::format(
            path,
            format!(
                "magic {:#010x} is not an IDX image file ({IMAGES_MAGIC:#010x})",
                head[0]
            ),
        ));
    }
    let (count, rows, cols) = (head[1] as usize, head[2] as usize, head[3] as usize);
    let pixels = bytes[16..].to_vec();
    if pixels.len() != count * rows * cols {
        return Err(DataError::format(
            path,
            format!(
                "{count} images of {rows}x{cols} need {} bytes, found {}",
                count * rows * cols,
                pixels.len()
            ),
        ));
    }
    Ok(Images {
        count,
        rows,
        cols,
        pixels,
    })
}

/// The labels of an IDX label file's bytes (raw or gzip).
pub fn labels(raw: &[u8], path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = contents(raw, path)?;
    let head = header(&bytes, 2, path)?;
    if head[0] != LABELS_MAGIC {
        return Err(DataError::format(
            path,
            format!(
                "magic {:#010x} is not an IDX label file ({LABELS_MAGIC:#010x})",
                head[0]
            ),
        ));
    }
    let labels = bytes[8..].to_vec();
    if labels.len() != head[1] as usize {
        return Err(DataError::format(
            path,
            format!("the header says {} labels, found {}", head[1], labels.len()),
        ));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx_images(count: u32, side: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        for word in [IMAGES_MAGIC, count, side, side] {
            bytes.extend(word.to_be_bytes());
        }
        bytes.extend((0..count * side * side).map(|i| (i % 256) as u8));
        bytes
    }

    #[test]
    fn raw_and_gzip_files_read_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("x-images-idx3-ubyte");
        std::fs::write(&raw, idx_images(3, 4)).unwrap();
        let gz = dir.path().join("x-images-idx3-ubyte.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&idx_images(3, 4)).unwrap();
        std::fs::write(&gz, encoder.finish().unwrap()).unwrap();
        let read = |path: &Path| images(&std::fs::read(path).unwrap(), path);
        let a = read(&raw).unwrap();
        assert_eq!((a.count, a.rows, a.cols), (3, 4, 4));
        assert_eq!(a.pixels[17], 17);
        assert_eq!(read(&gz).unwrap(), a);
    }

    #[test]
    fn a_wrong_or_truncated_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad");
        let mut bytes = idx_images(3, 4);
        bytes.truncate(30);
        let err = images(&bytes, &path).unwrap_err().to_string();
        assert!(err.contains("need 48 bytes, found 14"), "{err}");
        let err = labels(&bytes, &path).unwrap_err().to_string();
        assert!(err.contains("not an IDX label file"), "{err}");
    }
}

//! RFC 5734 framing: each EPP data unit is a 4-byte big-endian length that
//! counts itself, then the XML.

use std::io::{self, Read, Write};

/// The largest XML a frame may carry.
pub const MAX_FRAME: usize = 1024 * 1024;
/// The header's own length.
const HEADER: usize = 4;

fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// Reads one frame's XML. A length under 5 (no XML) or a frame over
/// `MAX_FRAME` is an error: the caller closes the connection, since what
/// follows cannot be found again.
pub fn read_frame(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut header = [0u8; HEADER];
    r.read_exact(&mut header)?;
    let total = u32::from_be_bytes(header) as usize;
    if total <= HEADER {
        return Err(refused(format!("frame length {total} is under 5")));
    }
    let len = total - HEADER;
    if len > MAX_FRAME {
        return Err(refused(format!(
            "frame of {len} bytes is over the limit of {MAX_FRAME}"
        )));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Writes `xml` as one frame and flushes it.
pub fn write_frame(w: &mut impl Write, xml: &[u8]) -> io::Result<()> {
    let total = u32::try_from(xml.len() + HEADER)
        .map_err(|_| refused("an answer too long for a frame".into()))?;
    let mut out = Vec::with_capacity(xml.len() + HEADER);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(xml);
    w.write_all(&out)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_bad_lengths_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"<epp/>").unwrap();
        assert_eq!(&buf[..4], &10u32.to_be_bytes());
        assert_eq!(read_frame(&mut &buf[..]).unwrap(), b"<epp/>");
        for total in [0u32, 4, (MAX_FRAME + 5) as u32, u32::MAX] {
            let mut bad = total.to_be_bytes().to_vec();
            bad.extend_from_slice(b"<epp/>");
            assert!(read_frame(&mut &bad[..]).is_err(), "{total}");
        }
        // A frame cut short is an error too, not a wait for ever.
        assert!(read_frame(&mut &[0, 0, 0, 20, b'<'][..]).is_err());
    }
}

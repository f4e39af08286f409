use std::io::Read;
use std::io::Result as IoResult;
use std::sync::mpsc::channel;
use std::sync::mpsc::{Receiver, Sender};

/// A `Reader` that reads exactly the number of bytes from a sub-reader.
///
/// If the limit is reached, it returns EOF. If the limit is not reached
/// when the destructor is called, the remaining bytes will be read and
/// thrown away.
pub struct EqualReader<R>
where
    R: Read,
{
    reader: R,
    size: usize,
    last_read_signal: Sender<IoResult<()>>,
}

impl<R> EqualReader<R>
where
    R: Read,
{
    pub fn new(reader: R, size: usize) -> (EqualReader<R>, Receiver<IoResult<()>>) {
        let (tx, rx) = channel();

        let r = EqualReader {
            reader,
            size,
            last_read_signal: tx,
        };

        (r, rx)
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 {
            return Ok(0);
        }

        let buf = if buf.len() < self.size {
            buf
        } else {
            &mut buf[..self.size]
        };

        match self.reader.read(buf) {
            Ok(len) => {
                self.size -= len;
                Ok(len)
            }
            err @ Err(_) => err,
        }
    }
}

impl<R> Drop for EqualReader<R>
where
    R: Read,
{
    // regdesk patch: the upstream drain allocated a buffer as large as the
    // *declared* remaining length, so one request declaring a huge
    // Content-Length aborted the whole process. Drain through a fixed buffer,
    // and give up past DRAIN_LIMIT: the connection is then unusable and the
    // next read on it fails, which closes it.
    fn drop(&mut self) {
        const DRAIN_LIMIT: usize = 4 * 1024 * 1024;
        let mut remaining_to_read = self.size;
        let mut drained = 0usize;
        let mut buf = [0u8; 4096];

        while remaining_to_read > 0 {
            if drained >= DRAIN_LIMIT {
                let err = std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "unread request body over the drain limit",
                );
                self.last_read_signal.send(Err(err)).ok();
                return;
            }
            let want = remaining_to_read.min(buf.len());
            match self.reader.read(&mut buf[..want]) {
                Err(e) => {
                    self.last_read_signal.send(Err(e)).ok();
                    break;
                }
                Ok(0) => {
                    self.last_read_signal.send(Ok(())).ok();
                    break;
                }
                Ok(other) => {
                    remaining_to_read -= other;
                    drained += other;
                }
            }
        }

        self.last_read_signal.send(Ok(())).ok();
    }
}

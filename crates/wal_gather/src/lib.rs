//! A thin VFS over the platform's own that writes each commit's WAL frames
//! with one write call instead of two per page.
//!
//! SQLite appends a commit to the WAL as frames, and writes each frame as
//! two `pwrite` calls: its 24-byte header, then the page. A commit of a few
//! dozen changed pages was a hundred-odd system calls, much of the regdesk
//! writer thread's time (`walWriteOneFrame`, then `unixWrite`, then the
//! kernel's `pwrite64`). Here the appends of a commit
//! are gathered in memory and written together when the commit's last frame
//! arrives: that frame's header carries the database size, which no other
//! frame does. The commit is written before SQLite publishes it to other
//! connections (it updates the WAL index only after its last write
//! returns), a failed write fails the commit as before, and every other use
//! of the WAL file (a read, its size, a sync, a truncation, closing it)
//! writes what is gathered first. A write that is not the next append (a
//! frame rewritten in place, say) writes what is gathered and then itself,
//! so the file sees the same bytes in the same order as without this layer,
//! in fewer calls.
//!
//! Only WAL files are wrapped; every other file SQLite opens through this
//! VFS is the platform VFS's own file, untouched.
//!
//! This is the only unsafe code of regdesk, kept apart in its own crate so
//! that the application forbids `unsafe`: a VFS is a table of C function
//! pointers that SQLite calls with raw pointers.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name connections open this VFS by.
pub const NAME: &str = "regdesk-wal";
const NAME_C: &CStr = c"regdesk-wal";

/// Size of a WAL frame header; bytes 4..8 of it are the database size in
/// pages for a commit's last frame, and zero for every other frame.
const FRAME_HEADER: usize = 24;
/// Gathered bytes written at once even without a commit (a large
/// transaction's frames).
const MAX_GATHERED: usize = 4 << 20;
/// Buffer kept between commits; a larger one is given back after use.
const KEPT_CAPACITY: usize = 256 << 10;
/// Bytes in one write call: the platform VFS keeps only the low 17 bits of
/// a write's length (`seekAndWriteFd`: `nBuf &= 0x1ffff`), so a longer
/// write would be cut short and fail.
const MAX_WRITE: usize = 124 << 10;

thread_local! {
    /// WAL writes asked for and write calls made on this thread (tests).
    static COUNTS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

#[cfg(test)]
thread_local! {
    /// Write calls on this thread that fail as a full disk would (tests).
    static FAILING: Cell<u32> = const { Cell::new(0) };
}

/// `(writes SQLite asked for, write calls made)` on WAL files by this
/// thread so far.
pub fn thread_counts() -> (u64, u64) {
    COUNTS.with(Cell::get)
}

fn count(asked: u64, made: u64) {
    COUNTS.with(|c| {
        let (a, m) = c.get();
        c.set((a + asked, m + made));
    });
}

/// Whether the VFS is registered, or why it could not be.
static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the VFS (once) and returns its name for
/// `Connection::open_with_flags_and_vfs`.
pub fn register() -> Result<&'static str, String> {
    REGISTERED
        .get_or_init(register_once)
        .as_ref()
        .map(|_| NAME)
        .map_err(Clone::clone)
}

fn register_once() -> Result<(), String> {
    // SAFETY: sqlite3_vfs_find and sqlite3_vfs_register are thread-safe; the
    // new VFS is leaked, so it outlives every connection that uses it.
    unsafe {
        if ffi::sqlite3_initialize() != ffi::SQLITE_OK {
            return Err("SQLite could not be initialised".into());
        }
        let real = ffi::sqlite3_vfs_find(std::ptr::null());
        if real.is_null() {
            return Err("SQLite has no default VFS".into());
        }
        let mut vfs = *real;
        vfs.iVersion = vfs.iVersion.min(3);
        vfs.szOsFile = (*real).szOsFile + std::mem::size_of::<WalFile>() as c_int;
        vfs.pNext = std::ptr::null_mut();
        vfs.zName = NAME_C.as_ptr();
        vfs.pAppData = real.cast();
        vfs.xOpen = Some(open);
        let vfs = Box::into_raw(Box::new(vfs));
        let rc = ffi::sqlite3_vfs_register(vfs, 0);
        if rc != ffi::SQLITE_OK {
            drop(Box::from_raw(vfs));
            return Err(format!("registering the WAL VFS failed ({rc})"));
        }
        Ok(())
    }
}

/// What SQLite holds for a WAL file: its own header, then ours. The
/// platform's file follows in the same allocation.
#[repr(C)]
struct WalFile {
    base: ffi::sqlite3_file,
    state: *mut Gathered,
}

/// Appends not written yet.
struct Gathered {
    real: *mut ffi::sqlite3_file,
    bytes: Vec<u8>,
    /// File offset of `bytes[0]`.
    start: i64,
    /// Where the next append goes: just past the last one.
    next: i64,
    /// The last append was the header of a commit's last frame: its page
    /// ends the commit.
    commit_page_next: bool,
}

impl Gathered {
    /// Writes what is gathered.
    unsafe fn flush(&mut self) -> c_int {
        if self.bytes.is_empty() {
            return ffi::SQLITE_OK;
        }
        let mut rc = ffi::SQLITE_OK;
        let mut offset = self.start;
        for chunk in self.bytes.chunks(MAX_WRITE) {
            count(0, 1);
            rc = real_write(self.real, chunk, offset);
            if rc != ffi::SQLITE_OK {
                break;
            }
            offset += chunk.len() as i64;
        }
        self.next = self.start + self.bytes.len() as i64;
        self.bytes.clear();
        // A large transaction's buffer is not kept for the small ones.
        self.bytes.shrink_to(KEPT_CAPACITY);
        rc
    }

    unsafe fn write(&mut self, data: &[u8], offset: i64) -> c_int {
        count(1, 0);
        // Whether this write is the page of a commit's last frame, and
        // whether it is that frame's header, however either is written.
        let ends_commit = std::mem::replace(
            &mut self.commit_page_next,
            data.len() == FRAME_HEADER && data[4..8] != [0, 0, 0, 0],
        );
        let end = self.start + self.bytes.len() as i64;
        // An append continues what is gathered, or begins after the last
        // append; the WAL's own header (at 0) begins the file anew.
        let appends = if self.bytes.is_empty() {
            offset == self.next || offset == 0
        } else {
            offset == end
        };
        if !appends {
            // A rewrite in place (or an append after a reopen): in order,
            // and at once.
            let rc = self.flush();
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            count(0, 1);
            self.next = self.next.max(offset + data.len() as i64);
            return real_write(self.real, data, offset);
        }
        if self.bytes.is_empty() {
            self.start = offset;
        }
        self.bytes.extend_from_slice(data);
        if ends_commit || self.bytes.len() >= MAX_GATHERED {
            return self.flush();
        }
        ffi::SQLITE_OK
    }
}

unsafe fn real_write(file: *mut ffi::sqlite3_file, data: &[u8], offset: i64) -> c_int {
    #[cfg(test)]
    if FAILING.with(|f| f.replace(f.get().saturating_sub(1))) > 0 {
        return ffi::SQLITE_IOERR_WRITE;
    }
    match (*(*file).pMethods).xWrite {
        Some(write) => write(file, data.as_ptr().cast(), data.len() as c_int, offset),
        None => ffi::SQLITE_IOERR_WRITE,
    }
}

unsafe fn real_vfs(vfs: *mut ffi::sqlite3_vfs) -> *mut ffi::sqlite3_vfs {
    (*vfs).pAppData.cast()
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let real = real_vfs(vfs);
    let Some(real_open) = (*real).xOpen else {
        return ffi::SQLITE_CANTOPEN;
    };
    if flags & ffi::SQLITE_OPEN_WAL == 0 {
        // Any other file is the platform's own, in the space SQLite gave.
        return real_open(real, name, file, flags, out_flags);
    }
    let wal = file.cast::<WalFile>();
    let inner = file
        .cast::<u8>()
        .add(std::mem::size_of::<WalFile>())
        .cast::<ffi::sqlite3_file>();
    (*wal).base.pMethods = std::ptr::null();
    let rc = real_open(real, name, inner, flags, out_flags);
    if rc != ffi::SQLITE_OK {
        // A file the platform opened halfway is closed here: SQLite only
        // closes what it sees opened.
        if !(*inner).pMethods.is_null() {
            if let Some(close) = methods(inner).xClose {
                close(inner);
            }
        }
        return rc;
    }
    if (*inner).pMethods.is_null() {
        return ffi::SQLITE_CANTOPEN;
    }
    (*wal).state = Box::into_raw(Box::new(Gathered {
        real: inner,
        bytes: Vec::new(),
        start: 0,
        next: 0,
        commit_page_next: false,
    }));
    (*wal).base.pMethods = &WAL_METHODS;
    rc
}

unsafe fn gathered<'a>(file: *mut ffi::sqlite3_file) -> &'a mut Gathered {
    &mut *(*file.cast::<WalFile>()).state
}

/// Calls method `$method` of the platform's file with `$args`, or answers
/// `$missing` when it has none. `flushed` writes what is gathered first,
/// and answers that write's error if it fails.
macro_rules! delegate {
    (flushed $file:expr, $method:ident($($arg:expr),*) or $missing:expr) => {{
        let (inner, rc) = flushed($file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        match methods(inner).$method {
            Some(method) => method(inner $(, $arg)*),
            None => $missing,
        }
    }};
    ($file:expr, $method:ident($($arg:expr),*) or $missing:expr) => {{
        let inner = real($file);
        match methods(inner).$method {
            Some(method) => method(inner $(, $arg)*),
            None => $missing,
        }
    }};
}

/// The platform's file, with what is gathered written first.
unsafe fn flushed(file: *mut ffi::sqlite3_file) -> (*mut ffi::sqlite3_file, c_int) {
    let g = gathered(file);
    (g.real, g.flush())
}

/// The platform's file, as it is.
unsafe fn real(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    gathered(file).real
}

unsafe fn methods(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    &*(*file).pMethods
}

static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let (inner, flushed) = flushed(file);
    let wal = file.cast::<WalFile>();
    drop(Box::from_raw((*wal).state));
    (*wal).state = std::ptr::null_mut();
    let rc = match methods(inner).xClose {
        Some(close) => close(inner),
        None => ffi::SQLITE_OK,
    };
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        rc
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    delegate!(flushed file, xRead(buf, amount, offset) or ffi::SQLITE_IOERR_READ)
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let data = std::slice::from_raw_parts(buf.cast::<u8>(), len);
    gathered(file).write(data, offset)
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    delegate!(flushed file, xTruncate(size) or ffi::SQLITE_IOERR_TRUNCATE)
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    delegate!(flushed file, xSync(flags) or ffi::SQLITE_IOERR_FSYNC)
}

unsafe extern "C" fn file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    delegate!(flushed file, xFileSize(size) or ffi::SQLITE_IOERR_FSTAT)
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    delegate!(flushed file, xFileControl(op, arg) or ffi::SQLITE_NOTFOUND)
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    delegate!(file, xLock(level) or ffi::SQLITE_OK)
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    delegate!(file, xUnlock(level) or ffi::SQLITE_OK)
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    *out = 0;
    delegate!(file, xCheckReservedLock(out) or ffi::SQLITE_OK)
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    delegate!(file, xSectorSize() or 4096)
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    delegate!(file, xDeviceCharacteristics() or 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::{params, Connection, OpenFlags};
    use std::path::Path;

    fn writer(path: &Path) -> Connection {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn = Connection::open_with_flags_and_vfs(path, flags, register().unwrap()).unwrap();
        conn.execute_batch(
            "pragma page_size = 1024; pragma journal_mode = wal; pragma synchronous = normal;
             create table if not exists t (id integer primary key, k text, v blob);
             create index if not exists t_k on t(k);",
        )
        .unwrap();
        conn
    }

    fn rows(conn: &Connection) -> Vec<(i64, String, Vec<u8>)> {
        let mut stmt = conn.prepare("select id, k, v from t order by id").unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn a_commit_of_many_pages_is_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.db");
        let conn = writer(&path);
        let commit = |n: i64, size: i64| {
            let before = thread_counts();
            conn.execute_batch("begin").unwrap();
            for i in 0..n {
                conn.execute(
                    "insert into t (k, v) values (?1, zeroblob(?2))",
                    params![format!("key {}", i * 7919 % n), size],
                )
                .unwrap();
            }
            conn.execute_batch("commit").unwrap();
            let after = thread_counts();
            (after.0 - before.0, after.1 - before.1)
        };
        // Dozens of pages, each a header and a page: one call.
        let (asked, made) = commit(300, 100);
        assert!(asked > 60, "{asked} writes asked for");
        assert_eq!(made, 1, "{made} write calls for {asked} writes");
        // Over 300 KiB: in calls short enough for the platform VFS.
        let (asked, made) = commit(300, 1000);
        assert!(asked > 600, "{asked} writes asked for");
        assert!(
            (3..=4).contains(&made),
            "{made} write calls for {asked} writes"
        );
        let reader = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        assert_eq!(rows(&reader).len(), 600);
    }

    /// Another connection (the platform VFS) sees every commit whole, also
    /// across transactions that spill pages before their commit, rolled-back
    /// ones, commits over the longest single write, and WAL restarts; the
    /// file is sound after a reopen.
    #[test]
    fn readers_and_a_reopen_see_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.db");
        let conn = writer(&path);
        // A tiny page cache: large transactions write frames before their
        // commit (spills).
        conn.execute_batch("pragma cache_size = 10").unwrap();
        let reader = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let mut model: Vec<(i64, String, Vec<u8>)> = Vec::new();
        let mut next_id = 1;
        for round in 0..60_i64 {
            let n = [1, 5, 40, 400][round as usize % 4];
            let rollback = round % 7 == 3;
            conn.execute_batch("begin").unwrap();
            let mut added = Vec::new();
            for j in 0..n {
                let (id, k) = (next_id + j, format!("k{}", (round * 31 + j) % 97));
                let v = vec![(round % 251) as u8; (j as usize * 13) % 700];
                conn.execute(
                    "insert into t (id, k, v) values (?1, ?2, ?3)",
                    params![id, k, v],
                )
                .unwrap();
                added.push((id, k, v));
            }
            if round % 5 == 2 {
                conn.execute("delete from t where id % 3 = ?1", [round % 3])
                    .unwrap();
            }
            if rollback {
                conn.execute_batch("rollback").unwrap();
            } else {
                conn.execute_batch("commit").unwrap();
                next_id += n;
                model.extend(added);
                if round % 5 == 2 {
                    model.retain(|(id, _, _)| id % 3 != round % 3);
                }
            }
            assert_eq!(rows(&reader), model, "round {round}");
            if round % 11 == 10 {
                // The WAL starts again at its beginning.
                conn.execute_batch("pragma wal_checkpoint(truncate)")
                    .unwrap();
            }
        }
        let check: String = reader
            .query_row("pragma integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        drop(reader);
        drop(conn);
        let again = writer(&path);
        assert_eq!(rows(&again), model);
    }

    /// A commit whose gathered write fails is an error to its caller and
    /// publishes nothing: readers keep the last commit, the next commit
    /// works, and the file is sound after a reopen.
    #[test]
    fn a_failed_write_fails_the_commit_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fail.db");
        let conn = writer(&path);
        let reader = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let insert = |n: i64| -> rusqlite::Result<()> {
            conn.execute_batch("begin")?;
            for i in 0..n {
                conn.execute(
                    "insert into t (k, v) values (?1, zeroblob(50))",
                    [format!("k{i}")],
                )?;
            }
            conn.execute_batch("commit")
        };
        insert(50).unwrap();
        FAILING.with(|f| f.set(1));
        let failed = insert(200);
        assert!(failed.is_err(), "the commit succeeded without its write");
        if !conn.is_autocommit() {
            conn.execute_batch("rollback").unwrap();
        }
        assert_eq!(rows(&reader).len(), 50);
        insert(30).unwrap();
        assert_eq!(rows(&reader).len(), 80);
        let check: String = reader
            .query_row("pragma integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        drop(reader);
        drop(conn);
        assert_eq!(rows(&writer(&path)).len(), 80);
    }

    /// A WAL that still holds frames when the writer opens it again (another
    /// connection kept it) is appended to past its start: the first frame
    /// of a commit of one page is written as it comes, and its page still
    /// ends the commit.
    #[test]
    fn a_commit_appended_to_a_kept_wal_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kept.db");
        let conn = writer(&path);
        conn.execute_batch("create table u (x); insert into u values (1);")
            .unwrap();
        let reader = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let count = |c: &Connection| -> i64 {
            c.query_row("select count(*) from u", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(&reader), 1);
        // The reader keeps the WAL and its frames past the writer's close.
        drop(conn);
        let conn = writer(&path);
        for n in 2..=4 {
            conn.execute("insert into u values (?1)", [n]).unwrap();
            assert_eq!(count(&reader), n);
        }
        drop(conn);
        drop(reader);
        assert_eq!(count(&writer(&path)), 4);
    }
}

//! The file IO of transfers: one task that takes [`FileJob`]s from `update` and reports
//! [`FileEvent`]s back, so `update` stays pure.
//!
//! - Hashing a file to offer runs on the blocking pool.
//! - Each upload is a task reading its file from an offset and putting chunks into the
//!   network's chunk lane ([`Outbound`], bounded: a slow socket slows the reading), never more
//!   than its allowance (`until`, moved by [`FileJob::Allow`] as `file_progress` comes in).
//! - Downloads are written by this task: appended to `<name>.part` in the download directory
//!   while a running SHA-256 follows, checked on `file_done`; a match renames the file to its
//!   final name (never over an existing one), anything else deletes the `.part`.
//!
//! **Invariant:** the job channel is unbounded because what it carries is bounded elsewhere:
//! `Write` jobs by the sender's window (at most [`crate::transfer::WINDOW`] bytes beyond our
//! last ack), everything else by the user's typing.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use chat_proto::ClientMsg;
use chat_proto::message::{FileChunk, FileDone};
use sha2::{Digest, Sha256};
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::filename::{PART_SUFFIX, sanitize_file_name, unique_name};
use crate::net::Outbound;
use crate::transfer::{FileEvent, FileJob};

/// Where downloads go.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// The download directory (created when the first file arrives).
    pub download_dir: PathBuf,
}

/// The handle to the file task. Dropping it stops the task (uploads end, `.part`s stay for a
/// later resume only while the process lives).
#[derive(Debug, Clone)]
pub struct FilesHandle {
    /// To the file task; unbounded (see the module's invariant).
    job_tx: mpsc::UnboundedSender<FileJob>,
}

impl FilesHandle {
    /// Queues a job.
    pub fn send(&self, job: FileJob) {
        let _ = self.job_tx.send(job);
    }
}

/// The default download directory: the XDG one, else `~/Downloads`.
pub fn default_download_dir() -> PathBuf {
    let user = directories::UserDirs::new();
    if let Some(dir) = user.as_ref().and_then(|u| u.download_dir()) {
        return dir.to_path_buf();
    }
    let home = directories::BaseDirs::new()
        .map(|b| b.home_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("."));
    home.join("Downloads")
}

/// Starts the file task; uploads put their chunks into `chunk_tx`.
pub fn spawn(
    config: FilesConfig,
    chunk_tx: mpsc::Sender<Outbound>,
) -> (FilesHandle, mpsc::Receiver<FileEvent>) {
    let (job_tx, job_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::channel(256);
    tokio::spawn(run(config, job_rx, event_tx, chunk_tx));
    (FilesHandle { job_tx }, event_rx)
}

/// One download being written.
struct Download {
    /// The `.part`, opened for appending.
    file: File,
    /// Its path.
    part: PathBuf,
    /// The name it gets when complete (sanitized; re-checked for collisions then).
    name: String,
    /// Bytes in the `.part`.
    len: u64,
    /// Size offered.
    size: u64,
    /// SHA-256 of the bytes so far.
    hasher: Sha256,
    /// Expected SHA-256, lowercase hex.
    sha256: String,
}

/// One upload task and its allowance.
struct Upload {
    /// The task; aborted when the upload stops or restarts.
    task: JoinHandle<()>,
    /// How far it may send.
    until_tx: watch::Sender<u64>,
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    config: FilesConfig,
    mut job_rx: mpsc::UnboundedReceiver<FileJob>,
    event_tx: mpsc::Sender<FileEvent>,
    chunk_tx: mpsc::Sender<Outbound>,
) {
    let mut downloads: HashMap<u64, Download> = HashMap::new();
    let mut uploads: HashMap<u64, Upload> = HashMap::new();
    while let Some(job) = job_rx.recv().await {
        let event = match job {
            FileJob::Hash { key, path } => {
                let tx = event_tx.clone();
                tokio::spawn(async move {
                    let event = match tokio::task::spawn_blocking(move || hash_file(&path)).await {
                        Ok(Ok((path, name, size, sha256))) => FileEvent::Hashed {
                            key,
                            path,
                            name,
                            size,
                            sha256,
                        },
                        Ok(Err(reason)) => FileEvent::HashFailed { key, reason },
                        Err(e) => FileEvent::HashFailed {
                            key,
                            reason: e.to_string(),
                        },
                    };
                    let _ = tx.send(event).await;
                });
                None
            }
            FileJob::Upload {
                file,
                path,
                offset,
                size,
                until,
                chunk,
                generation,
            } => {
                let (until_tx, until_rx) = watch::channel(until);
                let spec = UploadSpec {
                    file,
                    path,
                    offset,
                    size,
                    chunk,
                    generation,
                };
                let (chunks, events) = (chunk_tx.clone(), event_tx.clone());
                let task = tokio::spawn(async move {
                    if let Err(reason) = upload(spec, until_rx, chunks).await {
                        let _ = events.send(FileEvent::Failed { file, reason }).await;
                    }
                });
                // Replacing an upload (a resume) aborts the old one.
                uploads.insert(file, Upload { task, until_tx });
                None
            }
            FileJob::Allow { file, until } => {
                if let Some(u) = uploads.get(&file) {
                    u.until_tx.send_replace(until);
                }
                None
            }
            FileJob::Open {
                file,
                name,
                size,
                sha256,
            } => Some(
                match open(&config.download_dir, &name, size, sha256).await {
                    Ok(d) => {
                        debug!(file, part = %d.part.display(), "receiving");
                        downloads.insert(file, d);
                        FileEvent::Opened { file, offset: 0 }
                    }
                    Err(e) => FileEvent::Failed {
                        file,
                        reason: format!("cannot create the file: {e}"),
                    },
                },
            ),
            FileJob::Resume { file } => match downloads.get_mut(&file) {
                Some(d) => Some(match d.rehash().await {
                    Ok(()) => FileEvent::Opened {
                        file,
                        offset: d.len,
                    },
                    Err(e) => FileEvent::Failed {
                        file,
                        reason: format!("cannot read the partial file: {e}"),
                    },
                }),
                None => Some(FileEvent::Failed {
                    file,
                    reason: "the partial file is gone".into(),
                }),
            },
            FileJob::Write(chunk) => match downloads.get_mut(&chunk.file) {
                Some(d) => {
                    let file = chunk.file;
                    match d.write(chunk).await {
                        Ok(true) => Some(FileEvent::Stored {
                            file,
                            offset: d.len,
                        }),
                        Ok(false) => None,
                        Err(e) => Some(FileEvent::Failed {
                            file,
                            reason: format!("cannot write: {e}"),
                        }),
                    }
                }
                None => None,
            },
            FileJob::Finish { file } => match downloads.remove(&file) {
                Some(d) => Some(finish(d, file, &config.download_dir).await),
                None => None,
            },
            FileJob::Stop { file } => {
                uploads.remove(&file);
                if let Some(d) = downloads.remove(&file) {
                    drop(d.file);
                    let _ = tokio::fs::remove_file(&d.part).await;
                }
                None
            }
        };
        if let Some(event) = event {
            if event_tx.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// Expands a leading `~/`.
fn expand(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => directories::BaseDirs::new()
            .map(|b| b.home_dir().join(rest))
            .unwrap_or_else(|| PathBuf::from(path)),
        None => PathBuf::from(path),
    }
}

/// Stat and hash a file to offer: (path, base name, size, SHA-256). Blocking.
fn hash_file(path: &str) -> Result<(PathBuf, String, u64, String), String> {
    let path = expand(path);
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let meta = std::fs::metadata(&path).map_err(err)?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    let mut f = std::fs::File::open(&path).map_err(err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    Ok((path, name, size, hex(&hasher.finalize())))
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What an upload sends.
struct UploadSpec {
    file: u64,
    path: PathBuf,
    offset: u64,
    size: u64,
    chunk: u64,
    generation: u64,
}

/// Reads `spec.path` from the offset and sends it in chunks within the allowance, then
/// `file_done`.
async fn upload(
    spec: UploadSpec,
    mut until_rx: watch::Receiver<u64>,
    chunk_tx: mpsc::Sender<Outbound>,
) -> Result<(), String> {
    let err = |e: std::io::Error| format!("cannot read {}: {e}", spec.path.display());
    let mut f = File::open(&spec.path).await.map_err(err)?;
    f.seek(SeekFrom::Start(spec.offset)).await.map_err(err)?;
    let mut pos = spec.offset;
    debug!(file = spec.file, pos, "upload starts");
    let out = |msg| Outbound {
        generation: spec.generation,
        msg,
    };
    while pos < spec.size {
        let n = spec.chunk.min(spec.size - pos);
        // Wait until the window has room for the whole chunk.
        while pos + n > *until_rx.borrow_and_update() {
            if until_rx.changed().await.is_err() {
                return Ok(());
            }
        }
        let mut data = vec![0u8; usize::try_from(n).map_err(|e| e.to_string())?];
        f.read_exact(&mut data).await.map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                format!("{} got shorter since it was offered", spec.path.display())
            } else {
                err(e)
            }
        })?;
        let chunk = FileChunk {
            file: spec.file,
            offset: pos,
            data: Bytes::from(data),
        };
        if chunk_tx
            .send(out(ClientMsg::FileChunk(chunk)))
            .await
            .is_err()
        {
            return Ok(());
        }
        pos += n;
    }
    let done = ClientMsg::FileDone(FileDone { file: spec.file });
    let _ = chunk_tx.send(out(done)).await;
    Ok(())
}

/// Whether `name` exists in `dir` (a broken symlink counts).
fn taken(dir: &Path, name: &str) -> bool {
    std::fs::symlink_metadata(dir.join(name)).is_ok()
}

/// Creates the `.part` for `name` in `dir` under a sanitized name no file has yet.
async fn open(dir: &Path, name: &str, size: u64, sha256: String) -> std::io::Result<Download> {
    tokio::fs::create_dir_all(dir).await?;
    let safe = sanitize_file_name(name);
    // `create_new` makes the claim atomic; a name taken meanwhile gets the next number.
    for _ in 0..100 {
        let name = unique_name(&safe, |n| taken(dir, n));
        let part = dir.join(format!("{name}{PART_SUFFIX}"));
        match OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&part)
            .await
        {
            Ok(file) => {
                return Ok(Download {
                    file,
                    part,
                    name,
                    len: 0,
                    size,
                    hasher: Sha256::new(),
                    sha256: sha256.to_ascii_lowercase(),
                });
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        ErrorKind::AlreadyExists,
        "no free name",
    ))
}

impl Download {
    /// Appends a chunk if it is the next one; false for a chunk already stored or out of
    /// order (after a reconnect the sender restarts from our offset).
    async fn write(&mut self, chunk: FileChunk) -> std::io::Result<bool> {
        if chunk.offset != self.len {
            debug!(
                at = chunk.offset,
                have = self.len,
                "chunk out of order skipped"
            );
            return Ok(false);
        }
        let room = self.size.saturating_sub(self.len);
        let data = &chunk.data[..chunk
            .data
            .len()
            .min(usize::try_from(room).unwrap_or(usize::MAX))];
        self.file.write_all(data).await?;
        self.file.flush().await?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(true)
    }

    /// Recomputes the hash from what the `.part` holds (the resume point is what is on disk).
    async fn rehash(&mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        let len = tokio::fs::metadata(&self.part).await?.len();
        let part = self.part.clone();
        let hasher = tokio::task::spawn_blocking(move || -> std::io::Result<Sha256> {
            let mut f = std::fs::File::open(&part)?.take(len);
            let mut hasher = Sha256::new();
            std::io::copy(&mut f, &mut hasher)?;
            Ok(hasher)
        })
        .await
        .map_err(std::io::Error::other)??;
        self.hasher = hasher;
        self.len = len;
        Ok(())
    }
}

/// Checks a complete download and gives it its name, or deletes it.
async fn finish(d: Download, file: u64, dir: &Path) -> FileEvent {
    let _ = d.file.sync_all().await;
    let got = hex(&d.hasher.clone().finalize());
    let fail = |reason: String| FileEvent::Failed { file, reason };
    if d.len != d.size || got != d.sha256 {
        drop(d.file);
        let _ = tokio::fs::remove_file(&d.part).await;
        return if d.len != d.size {
            fail(format!("got {} of {} bytes", d.len, d.size))
        } else {
            fail("SHA-256 mismatch".to_owned())
        };
    }
    drop(d.file);
    // A hard link fails rather than replace an existing file, so no file is ever overwritten.
    for _ in 0..100 {
        let name = unique_name(&d.name, |n| {
            n != format!("{}{PART_SUFFIX}", d.name) && taken(dir, n)
        });
        let target = dir.join(&name);
        match std::fs::hard_link(&d.part, &target) {
            Ok(()) => {
                let _ = tokio::fs::remove_file(&d.part).await;
                return FileEvent::Finished { file, path: target };
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => {
                // No hard links here (some file systems): rename, having just checked the name.
                warn!(error = %e, "hard link failed, renaming");
                return match tokio::fs::rename(&d.part, &target).await {
                    Ok(()) => FileEvent::Finished { file, path: target },
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&d.part).await;
                        fail(format!("cannot rename: {e}"))
                    }
                };
            }
        }
    }
    let _ = tokio::fs::remove_file(&d.part).await;
    fail("no free name".to_owned())
}

//! The lesson's large-file upload server (上传大文件), made safe to use.
//!
//! ```text
//! cargo run --example upload_server -- --dir ./uploads --token-file ./token
//! cargo run --example upload_client -- --token-file ./token big.iso
//! ```
//!
//! The handler is the lesson's server, one function per step: read the
//! header, open a temporary file, receive the body while hashing, verify,
//! commit. What guards each step is beside this file, named for what it
//! guards: `auth.rs` (who may upload), `names.rs` (file names), `files.rs`
//! (the directory, symlinks, modes), `quota.rs` (disk space, slow clients),
//! `resume.rs` (interrupted uploads), `sweep.rs` (old partials),
//! `fastpath.rs` (throughput).
//!
//! Protocol: the lesson's `struct.pack('i', len)` + JSON header
//! `{"file_name", "file_size"}` (optional: `"token"`, `"sha256"`,
//! `"resume": true`, answered first by `{"offset": N}`), then the body;
//! then the reply `{"ok": true, "file_name", "size", "sha256"}` or
//! `{"ok": false, "error"}`, and `stored <size> <sha256> <name>` on stdout.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod config;
mod fastpath;
mod files;
mod names;
mod quota;
mod replies;
mod resume;
mod sweep;

use std::io::{self, ErrorKind};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use socketserver::framing::FrameFormat;
use socketserver::{HandlerResult, StreamHandler, StreamRequest};

pub use auth::{Auth, Who, random_hex};
use common::hex;
pub use config::UploadConfig;
use fastpath::BodyError;
use files::Temp;
use quota::Paced;
use replies::{Stop, disk, reply};

/// Headers are small: a name of at most 255 bytes, a token, a hash.
pub const HEADER: FrameFormat = FrameFormat::LESSON.max_len(4096);

/// The upload header, as the client sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct UploadHeader {
    pub file_name: String,
    pub file_size: u64,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub resume: bool,
}

/// The upload handler; clones share the directory and the limits.
#[derive(Debug, Clone)]
pub struct UploadHandler {
    cfg: Arc<UploadConfig>,
    dir: Arc<files::Dir>,
    sweeper: Arc<sweep::Sweeper>,
}

/// Opens (or creates) the directory and removes stale partial uploads.
pub fn handler(cfg: UploadConfig) -> io::Result<UploadHandler> {
    let dir = Arc::new(files::Dir::open(&cfg.dir, cfg.file_mode)?);
    let sweeper = Arc::new(sweep::Sweeper::new(cfg.partial_ttl));
    sweep::stale(&dir, cfg.partial_ttl);
    let cfg = Arc::new(cfg);
    Ok(UploadHandler { cfg, dir, sweeper })
}

/// An accepted header.
struct Upload {
    h: UploadHeader,
    who: Who,
    sha256: Option<String>,
    _slot: quota::Slot,
}

/// The temporary file being filled, the hash so far, and where the body starts.
struct Body {
    tmp: Temp,
    hasher: Sha256,
    offset: u64,
}

impl UploadHandler {
    /// Step 1: the header, within the pre-request deadline, then checked.
    fn read_header(&self, req: &mut StreamRequest) -> Result<Upload, Stop> {
        let sock = req.stream().try_clone()?;
        let mut r = Paced::deadline(&mut req.rfile, sock, self.cfg.header_timeout);
        let h: UploadHeader = match HEADER.read_json(&mut r) {
            Ok(Some(h)) => h,
            Ok(None) => return Err(Stop::Cut("left without a header".into())),
            Err(e) if e.kind() == ErrorKind::InvalidData => {
                return Err(Stop::Refused(format!("bad header: {e}")));
            }
            Err(e) => return Err(Stop::Cut(format!("no header: {e}"))),
        };
        let who = self.cfg.auth.check(h.token.as_deref());
        let who = who.map_err(|e| Stop::Refused(e.into()))?;
        let sha256 = self.cfg.check(&h, who).map_err(Stop::Refused)?;
        let _slot = self.cfg.quota.slot(req.peer.ip()).map_err(Stop::Refused)?;
        Ok(Upload {
            h,
            who,
            sha256,
            _slot,
        })
    }

    /// Step 2: a temporary file beside the final one, with room reserved;
    /// when resuming, the part already there is hashed and its length sent.
    fn open_temp(&self, req: &mut StreamRequest, up: &Upload) -> Result<Body, Stop> {
        let (name, size, sha) = (&up.h.file_name, up.h.file_size, up.sha256.as_deref());
        if !self.replaces(up) && self.dir.exists(name) {
            let why = "a file of that name exists (replacing one needs a token and a server started with --overwrite)";
            return Err(Stop::Refused(why.into()));
        }
        let mut tmp = resume::open(&self.dir, &self.cfg.quota, name, size, sha, up.h.resume)?;
        let mut hasher = Sha256::new();
        let offset = resume::start(&mut tmp, size, up.h.resume, &mut hasher).map_err(disk)?;
        let ready = fastpath::preallocate(&tmp.file, offset, size).map_err(disk);
        let ready = ready.and_then(|()| match up.h.resume {
            true => Ok(reply(&mut req.wfile, &json!({ "offset": offset }))?),
            false => Ok(()),
        });
        if let Err(stop) = ready {
            tmp.keep_if_resumable();
            return Err(stop);
        }
        Ok(Body {
            tmp,
            hasher,
            offset,
        })
    }

    /// Step 3: the body, into the file and the hash at once.
    fn receive(&self, req: &mut StreamRequest, up: &Upload, body: &mut Body) -> Result<(), Stop> {
        let (size, offset) = (up.h.file_size, body.offset);
        let name = names::escape(&up.h.file_name);
        let peer = &req.peer;
        log::info!("{peer}: receiving {name}, {size} bytes from offset {offset}");
        let sock = req.stream().try_clone()?;
        let mut r = Paced::min_rate(&mut req.rfile, sock, self.cfg.timeout, self.cfg.min_rate);
        let why = match fastpath::receive(&mut r, &body.tmp.file, &mut body.hasher, size - offset) {
            Ok(got) if got == size - offset => return Ok(()),
            Ok(got) => format!("client closed after {} of {size} bytes", offset + got),
            Err(BodyError::Net(e)) => e.to_string(),
            Err(BodyError::Disk(e)) => return Err(disk(e)),
        };
        Err(resume::cut(&mut body.tmp, &name, &why))
    }

    /// Step 4: the hash of what arrived against the one declared.
    fn verify(&self, up: &Upload, body: Body) -> Result<(Temp, String), Stop> {
        let digest = hex(&body.hasher.finalize());
        if let Some(expected) = &up.sha256
            && *expected != digest
        {
            let why =
                format!("sha256 mismatch: received data hashes to {digest}, expected {expected}");
            return Err(Stop::Refused(why));
        }
        Ok((body.tmp, digest))
    }

    /// Step 5: durable, renamed into place, announced, acknowledged.
    fn commit(
        &self,
        req: &mut StreamRequest,
        up: &Upload,
        tmp: Temp,
        digest: &str,
    ) -> Result<(), Stop> {
        let (name, size) = (&up.h.file_name, up.h.file_size);
        fastpath::finish(&tmp.file).map_err(disk)?;
        let announce = self.cfg.announce.then_some((size, digest));
        replies::store(tmp, name, self.replaces(up), announce)?;
        if let Err(e) = self.dir.sync() {
            log::warn!("fsync of {}: {e}", self.dir.path().display());
        }
        sweep::other_partials(&self.dir, name);
        let (peer, shown) = (&req.peer, names::escape(name));
        log::info!("{peer}: stored {shown}: {size} bytes, sha256 {digest}");
        let ack = json!({"ok": true, "file_name": name, "size": size, "sha256": digest});
        Ok(reply(&mut req.wfile, &ack)?)
    }

    /// Only a token holder replaces files, and only with `--overwrite`.
    fn replaces(&self, up: &Upload) -> bool {
        self.cfg.overwrite && up.who == Who::Owner
    }

    fn upload(&self, req: &mut StreamRequest) -> Result<(), Stop> {
        let up = self.read_header(req)?;
        let mut body = self.open_temp(req, &up)?;
        self.receive(req, &up, &mut body)?;
        let (tmp, digest) = self.verify(&up, body)?;
        self.commit(req, &up, tmp, &digest)
    }
}

impl StreamHandler for UploadHandler {
    fn handle(&mut self, req: &mut StreamRequest) -> HandlerResult {
        match self.upload(req) {
            Err(Stop::Refused(why)) => {
                log::warn!("{}: refused: {}", req.peer, names::escape(&why));
                reply(&mut req.wfile, &json!({"ok": false, "error": why}))?;
            }
            Err(Stop::Cut(why)) => log::info!("{}: {why}", req.peer),
            Ok(()) => {}
        }
        Ok(())
    }

    fn service_actions(&self) {
        self.sweeper.tick(&self.dir);
    }
}

fn main() -> io::Result<()> {
    common::init_logging();
    let (cli, addrs, cfg) = config::parse()?;
    let h = handler(cfg)?;
    let builder = cli.serve.builder().service_interval(h.sweeper.every);
    let builder = builder.max_connections_per_ip(cli.max_connections_per_ip);
    let builder = cli
        .edge
        .apply(builder.write_timeout(Duration::from_secs(30)))?; // TLS, PROXY
    common::serve(common::edge::bind_tcp(builder, &addrs[..], h)?) // or LISTEN_FDS
}

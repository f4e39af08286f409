//! The web UI's static files, embedded in the binary at build time.

use rust_embed::RustEmbed;

use super::{Req, Resp};

#[derive(RustEmbed)]
#[folder = "web/"]
struct Web;

/// Scripts, styles and requests from this origin only; blob: for the CSV download.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Serves an embedded file; `/` is `index.html`. Only embedded names can
/// match, so no path ever reaches the file system.
pub fn serve(req: &Req) -> Option<Resp> {
    let path = req.path.trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let file = Web::get(path)?;
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    // Every file is revalidated (a cheap 304 by ETag) so that a new binary's
    // index.html never runs with the previous binary's app.js.
    let cache = "no-cache";
    if req.header("if-none-match") == Some(etag.as_str()) {
        return Some(
            Resp::empty(304)
                .with_header("ETag", &etag)
                .with_header("Cache-Control", cache),
        );
    }
    let resp = Resp::new(200, content_type(path), file.data.into_owned())
        .with_header("ETag", &etag)
        .with_header("Cache-Control", cache)
        .with_header("X-Content-Type-Options", "nosniff");
    if !path.ends_with(".html") {
        return Some(resp);
    }
    // The UI loads only its own files and talks only to its own origin, so
    // an injected script or a framing page has nothing to work with.
    Some(
        resp.with_header("Content-Security-Policy", CSP)
            .with_header("X-Frame-Options", "DENY")
            .with_header("Referrer-Policy", "no-referrer"),
    )
}

//! Where replay's callbacks go: one JSON body per line, in capture order, to a file or stdout.
//! Each line is flushed as it is written, so a reader (or a test watching a running replay) sees
//! every completed capture, and a `kill -9` leaves only whole lines behind.

use anyhow::Context;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// A JSON-lines callback writer.
pub struct CallbackLines {
    out: Box<dyn Write + Send>,
}

impl CallbackLines {
    /// Write to `target`: a file path, or `-` for stdout.
    pub fn open(target: &Path) -> anyhow::Result<Self> {
        let out: Box<dyn Write + Send> = if target == Path::new("-") {
            Box::new(io::stdout())
        } else {
            if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let file =
                File::create(target).with_context(|| format!("creating {}", target.display()))?;
            Box::new(BufWriter::new(file))
        };
        Ok(CallbackLines { out })
    }

    /// Append one callback body (it must be a single-line JSON object) and flush it.
    pub fn write(&mut self, body: &str) -> anyhow::Result<()> {
        debug_assert!(!body.contains('\n'));
        // One write of the whole line, so a line is never split by an interruption in between.
        let mut line = String::with_capacity(body.len() + 1);
        line.push_str(body);
        line.push('\n');
        self.out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.flush())
            .context("writing a callback line")?;
        Ok(())
    }

    /// Flush buffered lines.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.out.flush().context("flushing callback lines")
    }
}

//! The end of a build's log: at most `cap` bytes, secrets replaced before they are kept.

use std::collections::VecDeque;

pub struct LogTail {
    lines: VecDeque<String>,
    bytes: usize,
    cap: usize,
    secrets: Vec<String>,
}

pub const MASK: &str = "********";

impl LogTail {
    pub fn new(cap: usize, secrets: Vec<String>) -> LogTail {
        LogTail {
            lines: VecDeque::new(),
            bytes: 0,
            cap: cap.max(64),
            secrets: secrets.into_iter().filter(|s| s.len() >= 4).collect(),
        }
    }

    /// Adds one line (masked), dropping the oldest lines past the cap.
    pub fn push(&mut self, line: &str) {
        let mut line = line.trim_end().to_owned();
        for s in &self.secrets {
            line = line.replace(s.as_str(), MASK);
        }
        if line.len() > self.cap {
            let mut start = line.len() - self.cap;
            while !line.is_char_boundary(start) {
                start += 1;
            }
            line = line[start..].to_owned();
        }
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > self.cap {
            let Some(old) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= old.len() + 1;
        }
    }

    pub fn text(&self) -> String {
        self.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// buildah's own error line (the last), e.g. `error building at STEP "RUN …": … exit status 3`.
    pub fn error_line(&self) -> Option<String> {
        self.lines
            .iter()
            .rev()
            .find(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with("error") || l.contains("level=error")
            })
            .map(|l| l.chars().take(500).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_end_and_masks_secrets() {
        let mut t = LogTail::new(64, vec!["hunter22".into()]);
        for i in 0..20 {
            t.push(&format!("line {i} password=hunter22"));
        }
        let text = t.text();
        assert!(text.len() <= 64, "{text}");
        assert!(text.ends_with("line 19 password=********"), "{text}");
        assert!(!text.contains("hunter22"));
        t.push("error building at STEP \"RUN false\": exit status 1");
        t.push("done");
        assert_eq!(
            t.error_line().as_deref(),
            Some("error building at STEP \"RUN false\": exit status 1")
        );
    }
}

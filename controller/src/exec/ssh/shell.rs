//! What runs on the far side: shell quoting, the file-writing script, and exit statuses of
//! commands killed by a signal.

use std::borrow::Cow;

use russh::Sig;

/// Quotes one word for a POSIX shell on the far side.
pub(crate) fn quote(s: &str) -> Cow<'_, str> {
    shell_escape::unix::escape(Cow::Borrowed(s))
}

/// The POSIX sh script behind [`Session::write_file`](super::Session::write_file); stdin is the content.
pub(super) fn write_file_script(path: &str, mode: u32) -> String {
    let dir = match path.rfind('/') {
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    };
    let mut script = String::from("umask 077 && ");
    if let Some(dir) = dir {
        script.push_str(&format!("mkdir -p -- {} && ", quote(dir)));
    }
    script.push_str(&format!(
        "t={p}.vnet-te-tmp.$$ && cat > \"$t\" && chmod {mode:04o} -- \"$t\" && mv -f -- \"$t\" {p} \
         || {{ rc=$?; rm -f -- \"$t\"; exit $rc; }}",
        p = quote(path)
    ));
    script
}

/// Signal numbers as on Linux, for `128 + n` exit statuses.
pub(super) fn signal_number(sig: &Sig) -> u32 {
    match sig {
        Sig::HUP => 1,
        Sig::INT => 2,
        Sig::QUIT => 3,
        Sig::ILL => 4,
        Sig::ABRT => 6,
        Sig::FPE => 8,
        Sig::KILL => 9,
        Sig::USR1 => 10,
        Sig::SEGV => 11,
        Sig::PIPE => 13,
        Sig::ALRM => 14,
        Sig::TERM => 15,
        Sig::Custom(_) => 127,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_file_script_quotes_paths() {
        let s = write_file_script("/etc/x y/it's", 0o600);
        assert!(s.contains("mkdir -p -- '/etc/x y'"), "{s}");
        assert!(s.contains("chmod 0600"), "{s}");
        assert!(s.contains(r#"mv -f -- "$t" '/etc/x y/it'\''s'"#), "{s}");
        assert!(!write_file_script("plain", 0o644).contains("mkdir"));
    }
}

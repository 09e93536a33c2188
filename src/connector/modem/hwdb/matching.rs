//! Loading the database (embedded and from a folder) and matching a port to an entry.

use super::*;

impl Hwdb {
    /// The entries built into the binary. They are checked by the test suite, so a failure
    /// here is a build defect; bad entries are left out and logged.
    pub fn embedded() -> Hwdb {
        // Parsed once per process (configuration checks and every bank ask for it).
        static DB: std::sync::OnceLock<Hwdb> = std::sync::OnceLock::new();
        DB.get_or_init(|| {
            let mut entries = Vec::new();
            for (stem, text) in EMBEDDED {
                match parse(stem, text) {
                    Ok(p) => entries.push(p),
                    Err(errs) => errs.iter().for_each(|e| tracing::error!(error = %e, "bad embedded hwdb entry")),
                }
            }
            Hwdb { entries }
        })
        .clone()
    }

    /// Load every `*.toml` in a folder (sorted); all problems of all files are returned.
    pub fn load_dir(dir: &Path) -> Result<Hwdb, Vec<HwdbError>> {
        let rd = std::fs::read_dir(dir).map_err(|e| {
            vec![HwdbError {
                file: dir.display().to_string(),
                what: e.to_string(),
            }]
        })?;
        let mut files: Vec<_> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut entries = Vec::new();
        let mut errors = Vec::new();
        for f in files {
            let stem = f
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string();
            match std::fs::read_to_string(&f) {
                Ok(text) => match parse(&stem, &text) {
                    Ok(p) => entries.push(p),
                    Err(e) => errors.extend(e),
                },
                Err(e) => errors.push(HwdbError {
                    file: f.display().to_string(),
                    what: e.to_string(),
                }),
            }
        }
        if errors.is_empty() {
            Ok(Hwdb { entries })
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, id: &str) -> Option<&Profile> {
        self.entries.iter().find(|p| p.id == id)
    }

    fn at_matches(p: &Profile, cgmi: Option<&str>, cgmm: Option<&str>) -> bool {
        let hit = |pats: &[String], v: Option<&str>| {
            v.is_some_and(|v| pats.iter().any(|x| norm(v).contains(&norm(x))))
        };
        let i = &p.identify;
        match (i.cgmi.is_empty(), i.cgmm.is_empty()) {
            (true, true) => false,
            (false, true) => hit(&i.cgmi, cgmi),
            (true, false) => hit(&i.cgmm, cgmm),
            (false, false) => {
                hit(&i.cgmi, cgmi) && hit(&i.cgmm, cgmm) || cgmi.is_none() && hit(&i.cgmm, cgmm)
            }
        }
    }

    /// Pick the entry for a port: USB id (narrowed by the AT answers when several share it),
    /// then the vendor fallback, then the AT answers alone, else the generic profile.
    pub fn find(
        &self,
        usb: Option<(&str, &str)>,
        cgmi: Option<&str>,
        cgmm: Option<&str>,
    ) -> (Profile, MatchedBy) {
        if let Some((vid, pid)) = usb {
            let (vid, pid) = (vid.to_ascii_lowercase(), pid.to_ascii_lowercase());
            let exact: Vec<&Profile> = self
                .entries
                .iter()
                .filter(|p| p.usb.iter().any(|u| u.vid == vid && u.pid == pid))
                .collect();
            if let Some(p) = exact.iter().find(|p| Self::at_matches(p, cgmi, cgmm)) {
                return ((*p).clone(), MatchedBy::UsbAndAt);
            }
            if exact.len() == 1 || (!exact.is_empty() && cgmm.is_none()) {
                return (exact[0].clone(), MatchedBy::Usb);
            }
            if exact.is_empty() {
                if let Some(p) = self.entries.iter().find(|p| {
                    p.usb.iter().any(|u| u.vid == vid && u.pid == "*")
                        && (cgmm.is_none() || Self::at_matches(p, cgmi, cgmm))
                }) {
                    return (p.clone(), MatchedBy::Vendor);
                }
            }
        }
        if let Some(p) = self
            .entries
            .iter()
            .find(|p| Self::at_matches(p, cgmi, cgmm))
        {
            return (p.clone(), MatchedBy::At);
        }
        (Profile::generic(), MatchedBy::Generic)
    }
}

/// USB vendor and product id of a tty, read from sysfs (`/sys/class/tty/<name>/device/..`),
/// following symlinks such as `/dev/serial/by-id/...`. None for ptys and plain UARTs.
pub fn usb_id_of(dev: &Path) -> Option<(String, String)> {
    let real = std::fs::canonicalize(dev).ok()?;
    let name = real.file_name()?.to_str()?;
    let mut dir = std::fs::canonicalize(format!("/sys/class/tty/{name}/device")).ok()?;
    for _ in 0..4 {
        let vid = std::fs::read_to_string(dir.join("idVendor"));
        let pid = std::fs::read_to_string(dir.join("idProduct"));
        if let (Ok(v), Ok(p)) = (vid, pid) {
            return Some((v.trim().to_string(), p.trim().to_string()));
        }
        dir = dir.parent()?.to_path_buf();
    }
    None
}

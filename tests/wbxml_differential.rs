//! Differential test against an independent encoder: Debian's libwbxml `xml2wbxml` (installed by
//! `make test`) encodes each XML document of tests/wbxml-corpus in WBXML 1.1, 1.2 and 1.3, with
//! and without a string table; our decoder must reproduce the original document (same elements,
//! attributes and text; xml2wbxml trims whitespace next to tags, so text is compared trimmed).

use postern::codec::{wbxml, xform};
use std::process::Command;

fn canon(e: &wbxml::Element, out: &mut String) {
    out.push('<');
    out.push_str(&e.name);
    let mut attrs = e.attrs.clone();
    attrs.retain(|(k, _)| k != "xmlns");
    attrs.sort();
    for (k, v) in attrs {
        out.push_str(&format!(" {k}={v:?}"));
    }
    out.push('>');
    for c in &e.children {
        match c {
            wbxml::Node::Element(c) => canon(c, out),
            wbxml::Node::Text(t) | wbxml::Node::CData(t) => {
                out.push_str(&format!("[{}]", t.trim()))
            }
        }
    }
    out.push_str("</>");
}

#[test]
fn our_decoder_reproduces_what_libwbxml_encodes() {
    let status = Command::new("xml2wbxml").arg("-h").output();
    assert!(
        status.is_ok(),
        "xml2wbxml is not installed: run `make test` (it installs libwbxml2-utils)"
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wbxml-corpus");
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("xml") {
            continue;
        }
        let original = xform::parse_xml(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut want = String::new();
        canon(&original, &mut want);
        for version in ["1.1", "1.2", "1.3"] {
            for no_table in [false, true] {
                let out = tmp.path().join("doc.wbxml");
                let mut cmd = Command::new("xml2wbxml");
                cmd.args(["-v", version, "-o"]).arg(&out);
                if no_table {
                    cmd.arg("-n");
                }
                let st = cmd.arg(&path).output().unwrap();
                assert!(
                    st.status.success(),
                    "xml2wbxml failed on {}: {}",
                    path.display(),
                    String::from_utf8_lossy(&st.stderr)
                );
                let bytes = std::fs::read(&out).unwrap();
                let doc = wbxml::decode(&bytes)
                    .unwrap_or_else(|e| panic!("{} v{version}: {e}", path.display()));
                let mut got = String::new();
                canon(&doc.root, &mut got);
                assert_eq!(
                    got,
                    want,
                    "{} (WBXML {version}, string table {})",
                    path.display(),
                    !no_table
                );
                // our XML output parses back to the same document
                let again = xform::parse_xml(&doc.to_xml()).unwrap();
                let mut again_s = String::new();
                canon(&again, &mut again_s);
                assert_eq!(again_s, want);
                checked += 1;
            }
        }
    }
    assert!(checked >= 40, "only {checked} documents checked");
}

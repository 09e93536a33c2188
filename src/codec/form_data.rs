//! `multipart/form-data` (RFC 7578) as `POST /v1/messages` takes it: one `message` part holding
//! the request's JSON, and file parts that become the message's attachments. Parsed with
//! `multer` from a body already read (and limited) in memory.

use bytes::Bytes;
use thiserror::Error;

/// Most file parts in one request.
pub const MAX_FILES: usize = 32;

/// A file part.
#[derive(Debug, Clone)]
pub struct FilePart {
    /// The form field's name.
    pub field: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

/// What the form held.
#[derive(Debug, Clone)]
pub struct FormData {
    /// The `message` part: the request's JSON.
    pub message: Bytes,
    pub files: Vec<FilePart>,
}

/// Why a form was refused; `field` is the part concerned.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FormDataError {
    #[error("Content-Type multipart/form-data needs a boundary")]
    NoBoundary,
    #[error("malformed multipart body: {0}")]
    Malformed(String),
    #[error("no `message` part with the request's JSON")]
    NoMessage,
    #[error("more than one `message` part")]
    TwoMessages,
    #[error("part {0:?} has no file name and is not `message`")]
    UnknownField(String),
    #[error("more than {MAX_FILES} files")]
    TooManyFiles,
    #[error("file {0:?} is empty")]
    EmptyFile(String),
}

impl FormDataError {
    /// The request field it concerns.
    pub fn field(&self) -> &'static str {
        match self {
            FormDataError::NoMessage | FormDataError::TwoMessages => "message",
            FormDataError::NoBoundary | FormDataError::Malformed(_) => "body",
            _ => "attachments",
        }
    }
}

/// Parse a form: `content_type` is the request's header (with its boundary).
pub async fn parse(body: Bytes, content_type: &str) -> Result<FormData, FormDataError> {
    let boundary = multer::parse_boundary(content_type).map_err(|_| FormDataError::NoBoundary)?;
    let stream = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut message = None;
    let mut files = Vec::new();
    while let Some(part) = form.next_field().await.map_err(|e| FormDataError::Malformed(e.to_string()))? {
        let field = part.name().unwrap_or("").to_string();
        let filename = part.file_name().map(str::to_string);
        let content_type = part.content_type().map(|m| m.essence_str().to_string());
        let bytes = part.bytes().await.map_err(|e| FormDataError::Malformed(e.to_string()))?;
        match (field.as_str(), &filename) {
            ("message", None) => {
                if message.replace(bytes).is_some() {
                    return Err(FormDataError::TwoMessages);
                }
            }
            (_, Some(name)) => {
                if bytes.is_empty() {
                    return Err(FormDataError::EmptyFile(name.clone()));
                }
                if files.len() == MAX_FILES {
                    return Err(FormDataError::TooManyFiles);
                }
                files.push(FilePart { field, filename, content_type, bytes });
            }
            (_, None) => return Err(FormDataError::UnknownField(field)),
        }
    }
    Ok(FormData { message: message.ok_or(FormDataError::NoMessage)?, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(parts: &[(&str, Option<&str>, &str)]) -> Bytes {
        let mut b = String::new();
        for (name, file, body) in parts {
            b.push_str("--XyZ\r\n");
            match file {
                Some(f) => b.push_str(&format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: text/csv\r\n\r\n")),
                None => b.push_str(&format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n")),
            }
            b.push_str(body);
            b.push_str("\r\n");
        }
        b.push_str("--XyZ--\r\n");
        Bytes::from(b)
    }

    fn run(body: Bytes, ct: &str) -> Result<FormData, FormDataError> {
        futures::executor::block_on(parse(body, ct))
    }

    #[test]
    fn a_message_and_its_files() {
        let f = run(form(&[("message", None, r#"{"to":"a@b.example"}"#), ("file", Some("r.csv"), "a,b\n1,2")]), "multipart/form-data; boundary=XyZ").unwrap();
        assert_eq!(&f.message[..], br#"{"to":"a@b.example"}"#);
        assert_eq!(f.files.len(), 1);
        assert_eq!((f.files[0].filename.as_deref(), f.files[0].content_type.as_deref()), (Some("r.csv"), Some("text/csv")));
        assert_eq!(&f.files[0].bytes[..], b"a,b\n1,2");
    }

    #[test]
    fn refusals_name_the_part() {
        let ct = "multipart/form-data; boundary=XyZ";
        assert_eq!(run(form(&[("file", Some("r.csv"), "x")]), ct).unwrap_err(), FormDataError::NoMessage);
        assert_eq!(run(form(&[("message", None, "{}"), ("message", None, "{}")]), ct).unwrap_err(), FormDataError::TwoMessages);
        assert_eq!(run(form(&[("message", None, "{}"), ("note", None, "x")]), ct).unwrap_err().field(), "attachments");
        assert_eq!(run(form(&[("message", None, "{}"), ("f", Some("e.txt"), "")]), ct).unwrap_err(), FormDataError::EmptyFile("e.txt".into()));
        assert_eq!(run(form(&[("message", None, "{}")]), "multipart/form-data").unwrap_err(), FormDataError::NoBoundary);
        assert!(matches!(run(Bytes::from_static(b"--XyZ\r\nnot a header\r\n"), ct), Err(FormDataError::Malformed(_))));
    }
}

//! The DAM metadata CSV format, pure and allocation-light: a header of typed
//! columns (`dc:title {{ String }}`, `dc:subject {{ String : multi }}`), one row per asset.
//!
//! The first column is `assetPath`. Every other header names a property and,
//! optionally, its type between `{{` and `}}`: String (the default), Long,
//! Double, Boolean or Date, with `: multi` for multi-valued properties whose
//! values are joined with `|` (a literal `|` or `\` inside a value is written
//! `\|` or `\\`). Fields follow RFC 4180: a field holding a comma, a quote or a
//! line break is quoted, with quotes doubled. An empty cell means "no value".

use std::fmt;

/// The type of a column's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Long,
    Double,
    Boolean,
    /// ISO 8601 date or date-time text.
    Date,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::String => "String",
            Kind::Long => "Long",
            Kind::Double => "Double",
            Kind::Boolean => "Boolean",
            Kind::Date => "Date",
        }
    }
}

/// One property column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The property name, e.g. `dc:title`.
    pub name: String,
    pub kind: Kind,
    /// Several values per asset.
    pub multi: bool,
}

impl Column {
    /// Reads one column header, e.g. `dc:subject {{ String : multi }}` (no `assetPath`).
    pub fn parse(header: &str) -> Result<Column, String> {
        parse_column(header)
    }

    /// The column's header text, e.g. `dc:subject {{ String : multi }}`.
    pub fn header(&self) -> String {
        if self.multi {
            format!("{} {{{{ {} : multi }}}}", self.name, self.kind.name())
        } else {
            format!("{} {{{{ {} }}}}", self.name, self.kind.name())
        }
    }
}

/// A typed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Long(i64),
    Double(f64),
    Boolean(bool),
    Date(String),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::String(s) | Value::Date(s) => s.clone(),
            Value::Long(n) => n.to_string(),
            Value::Double(d) => format_double(*d),
            Value::Boolean(b) => b.to_string(),
        }
    }
}

/// Shortest text that reads back as the same `f64`.
fn format_double(d: f64) -> String {
    let text = format!("{d:?}");
    text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
}

/// Why a file, a header or a cell could not be read. `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub line: usize,
    /// The column's header, when one cell is at fault.
    pub column: Option<String>,
    pub reason: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(column) => write!(f, "line {}, column {column:?}: {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

impl std::error::Error for Error {}

fn error(line: usize, reason: impl Into<String>) -> Error {
    Error {
        line,
        column: None,
        reason: reason.into(),
    }
}

/// Splits CSV text into records of fields, with the line each record starts on.
pub fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, Error> {
    iter_records(text).collect()
}

/// Reads CSV text one record at a time (for files too large to split at once):
/// yields each record's fields with the line it starts on, and stops after an error.
pub fn iter_records(text: &str) -> Records<'_> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Records {
        chars: text.chars().peekable(),
        line: 1,
        failed: false,
    }
}

/// The iterator [`iter_records`] returns.
pub struct Records<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    failed: bool,
}

impl Iterator for Records<'_> {
    type Item = Result<(usize, Vec<String>), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed && self.chars.peek().is_some() {
            match self.record() {
                Ok((_, fields)) if fields.len() == 1 && fields[0].is_empty() => continue,
                Ok(record) => return Some(Ok(record)),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl Records<'_> {
    /// Reads the record that starts at the current position.
    fn record(&mut self) -> Result<(usize, Vec<String>), Error> {
        let chars = &mut self.chars;
        let start = self.line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut was_quoted = false;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    return Err(error(start, "a quoted field is not closed"));
                }
                fields.push(std::mem::take(&mut field));
                break;
            };
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => quoted = false,
                    '\n' => {
                        self.line += 1;
                        field.push('\n');
                    }
                    _ => field.push(c),
                }
                continue;
            }
            match c {
                '"' if field.is_empty() && !was_quoted => {
                    quoted = true;
                    was_quoted = true;
                }
                '"' => return Err(error(self.line, "a quote inside an unquoted field")),
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => {
                    self.line += 1;
                    fields.push(std::mem::take(&mut field));
                    break;
                }
                _ if was_quoted => {
                    return Err(error(self.line, "text after the closing quote of a field"));
                }
                _ => field.push(c),
            }
        }
        Ok((start, fields))
    }
}

/// Reads a header row: `assetPath` first, then property columns.
pub fn parse_header(fields: &[String]) -> Result<Vec<Column>, Error> {
    match fields.first().map(|f| f.trim()) {
        Some("assetPath") => {}
        Some(other) => {
            return Err(error(
                1,
                format!("the first column must be assetPath, not {other:?}"),
            ));
        }
        None => return Err(error(1, "the header is empty")),
    }
    let mut columns: Vec<Column> = Vec::new();
    for raw in &fields[1..] {
        let column = parse_column(raw).map_err(|reason| Error {
            line: 1,
            column: Some(raw.clone()),
            reason,
        })?;
        if columns.iter().any(|c| c.name == column.name) {
            return Err(Error {
                line: 1,
                column: Some(raw.clone()),
                reason: format!("property {} appears twice", column.name),
            });
        }
        columns.push(column);
    }
    Ok(columns)
}

fn parse_column(raw: &str) -> Result<Column, String> {
    let raw = raw.trim();
    let (name, hint) = match raw.find("{{") {
        None => (raw, None),
        Some(at) => {
            let rest = raw[at + 2..]
                .strip_suffix("}}")
                .ok_or("a type hint must end with }}")?;
            (raw[..at].trim(), Some(rest.trim()))
        }
    };
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '{' || c == '}')
    {
        return Err(format!("{name:?} is not a property name"));
    }
    let (kind, multi) = match hint {
        None => (Kind::String, false),
        Some(hint) => {
            let (kind, multi) = match hint.split_once(':') {
                Some((kind, "multi")) | Some((kind, " multi")) => (kind.trim(), true),
                Some((_, other)) => return Err(format!("unknown modifier {:?}", other.trim())),
                None => (hint, false),
            };
            let kind = match kind {
                "String" => Kind::String,
                "Long" => Kind::Long,
                "Double" => Kind::Double,
                "Boolean" => Kind::Boolean,
                "Date" => Kind::Date,
                other => {
                    return Err(format!(
                        "unknown type {other:?}; use String, Long, Double, Boolean or Date"
                    ));
                }
            };
            (kind, multi)
        }
    };
    Ok(Column {
        name: name.to_string(),
        kind,
        multi,
    })
}

/// Reads one cell of `column`: no values if empty.
pub fn parse_cell(column: &Column, cell: &str) -> Result<Vec<Value>, String> {
    if cell.is_empty() {
        return Ok(Vec::new());
    }
    let parts = if column.multi {
        split_multi(cell)
    } else {
        vec![cell.to_string()]
    };
    parts
        .iter()
        .map(|part| parse_value(column.kind, part))
        .collect()
}

fn parse_value(kind: Kind, text: &str) -> Result<Value, String> {
    Ok(match kind {
        Kind::String => Value::String(text.to_string()),
        Kind::Long => Value::Long(
            text.trim()
                .parse()
                .map_err(|_| format!("{text:?} is not a whole number"))?,
        ),
        Kind::Double => {
            let d: f64 = text
                .trim()
                .parse()
                .map_err(|_| format!("{text:?} is not a number"))?;
            if !d.is_finite() {
                return Err(format!("{text:?} is not a finite number"));
            }
            Value::Double(d)
        }
        Kind::Boolean => match text.trim() {
            "true" | "TRUE" | "True" => Value::Boolean(true),
            "false" | "FALSE" | "False" => Value::Boolean(false),
            _ => return Err(format!("{text:?} is not true or false")),
        },
        Kind::Date => {
            let t = text.trim();
            if !is_iso_date(t) {
                return Err(format!(
                    "{text:?} is not an ISO 8601 date (2026-11-24 or 2026-11-24T10:00:00Z)"
                ));
            }
            Value::Date(t.to_string())
        }
    })
}

/// `YYYY-MM-DD`, optionally followed by `THH:MM[:SS[.fff]]` and `Z` or `±HH:MM`.
fn is_iso_date(t: &str) -> bool {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    if b.len() < 10
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
    {
        return false;
    }
    let month: u32 = t[5..7].parse().unwrap_or(0);
    let day: u32 = t[8..10].parse().unwrap_or(0);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    if b.len() == 10 {
        return true;
    }
    if b[10] != b'T' || !digits(11..13) || b.get(13) != Some(&b':') || !digits(14..16) {
        return false;
    }
    let mut rest = &t[16..];
    if let Some(seconds) = rest.strip_prefix(':') {
        if seconds.len() < 2 || !seconds.as_bytes()[..2].iter().all(u8::is_ascii_digit) {
            return false;
        }
        rest = &seconds[2..];
        if let Some(fraction) = rest.strip_prefix('.') {
            let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return false;
            }
            rest = &fraction[n..];
        }
    }
    match rest {
        "" | "Z" => true,
        zone => {
            let z = zone.as_bytes();
            z.len() == 6
                && (z[0] == b'+' || z[0] == b'-')
                && z[1..3].iter().all(u8::is_ascii_digit)
                && z[3] == b':'
                && z[4..6].iter().all(u8::is_ascii_digit)
        }
    }
}

fn split_multi(cell: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = cell.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => parts.last_mut().expect("one part").push(next),
                None => parts.last_mut().expect("one part").push('\\'),
            },
            '|' => parts.push(String::new()),
            _ => parts.last_mut().expect("one part").push(c),
        }
    }
    parts
}

/// One field, quoted if it must be.
pub fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) || text.starts_with(' ') || text.ends_with(' ') {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The header line (with CRLF) for `columns`.
pub fn write_header(columns: &[Column]) -> String {
    let mut line = String::from("assetPath");
    for column in columns {
        line.push(',');
        line.push_str(&field(&column.header()));
    }
    line.push_str("\r\n");
    line
}

/// One asset's line (with CRLF); `cells[i]` holds the values of `columns[i]`.
pub fn write_row(path: &str, columns: &[Column], cells: &[Vec<Value>]) -> String {
    let mut line = field(path);
    for (column, values) in columns.iter().zip(cells) {
        line.push(',');
        let text = if column.multi {
            values
                .iter()
                .map(|v| v.text().replace('\\', "\\\\").replace('|', "\\|"))
                .collect::<Vec<_>>()
                .join("|")
        } else {
            values.first().map(Value::text).unwrap_or_default()
        };
        line.push_str(&field(&text));
    }
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, kind: Kind, multi: bool) -> Column {
        Column {
            name: name.into(),
            kind,
            multi,
        }
    }

    #[test]
    fn headers_carry_types_and_multi() {
        let fields: Vec<String> = [
            "assetPath",
            "dc:title {{ String }}",
            "tiff:ImageWidth {{Long}}",
            "dc:subject {{ String : multi }}",
            "xmp:CreateDate {{ Date }}",
            "plain",
        ]
        .map(String::from)
        .to_vec();
        let columns = parse_header(&fields).unwrap();
        assert_eq!(
            columns,
            vec![
                col("dc:title", Kind::String, false),
                col("tiff:ImageWidth", Kind::Long, false),
                col("dc:subject", Kind::String, true),
                col("xmp:CreateDate", Kind::Date, false),
                col("plain", Kind::String, false),
            ]
        );
        assert_eq!(columns[2].header(), "dc:subject {{ String : multi }}");
    }

    #[test]
    fn bad_headers_are_named() {
        let bad = |h: &[&str]| {
            parse_header(&h.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap_err()
        };
        assert!(bad(&["path", "a"]).reason.contains("assetPath"));
        let e = bad(&["assetPath", "x {{ Float }}"]);
        assert_eq!(e.column.as_deref(), Some("x {{ Float }}"));
        assert!(e.reason.contains("unknown type"));
        assert!(
            bad(&["assetPath", "x {{ Long : many }}"])
                .reason
                .contains("modifier")
        );
        assert!(
            bad(&["assetPath", "a", "a {{ Long }}"])
                .reason
                .contains("twice")
        );
        assert!(bad(&["assetPath", "x {{ Long"]).reason.contains("}}"));
    }

    #[test]
    fn rfc4180_quoting_and_line_numbers() {
        let text = "\u{feff}assetPath,dc:title\r\n/a,\"Hello, \"\"world\"\"\"\r\n/b,\"two\nlines\"\n\n/c,plain\n";
        let read = records(text).unwrap();
        assert_eq!(read.len(), 4);
        assert_eq!(read[1], (2, vec!["/a".into(), "Hello, \"world\"".into()]));
        assert_eq!(read[2], (3, vec!["/b".into(), "two\nlines".into()]));
        assert_eq!(read[3].0, 6, "blank lines are skipped but counted");
        assert!(
            records("a,\"open\n")
                .unwrap_err()
                .reason
                .contains("not closed")
        );
        assert!(records("a,b\"c\n").unwrap_err().reason.contains("quote"));
        assert!(
            records("\"a\"b\n")
                .unwrap_err()
                .reason
                .contains("after the closing quote")
        );
    }

    #[test]
    fn cells_parse_by_type() {
        let long = col("n", Kind::Long, false);
        assert_eq!(parse_cell(&long, "42"), Ok(vec![Value::Long(42)]));
        assert!(
            parse_cell(&long, "4.2")
                .unwrap_err()
                .contains("whole number")
        );
        assert_eq!(parse_cell(&long, ""), Ok(vec![]));
        let flag = col("b", Kind::Boolean, false);
        assert_eq!(parse_cell(&flag, "TRUE"), Ok(vec![Value::Boolean(true)]));
        assert!(parse_cell(&flag, "yes").is_err());
        let double = col("d", Kind::Double, false);
        assert_eq!(parse_cell(&double, "2.5"), Ok(vec![Value::Double(2.5)]));
        assert!(parse_cell(&double, "NaN").is_err());
        let date = col("t", Kind::Date, false);
        for ok in [
            "2026-11-24",
            "2026-11-24T10:00Z",
            "2026-11-24T10:00:00.123+01:00",
        ] {
            assert!(parse_cell(&date, ok).is_ok(), "{ok}");
        }
        for bad in [
            "24/11/2026",
            "2026-13-01",
            "2026-11-24T10",
            "2026-11-24T10:00:00+0100",
        ] {
            assert!(parse_cell(&date, bad).is_err(), "{bad}");
        }
        let tags = col("s", Kind::String, true);
        assert_eq!(
            parse_cell(&tags, "a|b\\|c|d\\\\"),
            Ok(vec![
                Value::String("a".into()),
                Value::String("b|c".into()),
                Value::String("d\\".into())
            ])
        );
    }

    #[test]
    fn writing_then_reading_is_lossless() {
        let columns = vec![
            col("dc:title", Kind::String, false),
            col("dc:subject", Kind::String, true),
            col("tiff:ImageWidth", Kind::Long, false),
            col("exif:FNumber", Kind::Double, false),
            col("xmp:Rating", Kind::Boolean, false),
            col("xmp:CreateDate", Kind::Date, false),
        ];
        let cells = vec![
            vec![Value::String("A \"quoted\", title\nover two lines".into())],
            vec![
                Value::String("sea|sky".into()),
                Value::String("back\\slash".into()),
            ],
            vec![Value::Long(-4032)],
            vec![Value::Double(0.1 + 0.2)],
            vec![Value::Boolean(false)],
            vec![],
        ];
        let text = write_header(&columns) + &write_row("/content/dam/a, b.jpg", &columns, &cells);
        let read = records(&text).unwrap();
        assert_eq!(parse_header(&read[0].1).unwrap(), columns);
        let row = &read[1].1;
        assert_eq!(row[0], "/content/dam/a, b.jpg");
        for (i, column) in columns.iter().enumerate() {
            assert_eq!(
                parse_cell(column, &row[i + 1]).unwrap(),
                cells[i],
                "{}",
                column.name
            );
        }
    }

    #[test]
    fn records_stream_one_at_a_time_and_stop_after_an_error() {
        let mut it = iter_records("assetPath,a\n/x,1\n/y,\"open\n");
        assert_eq!(
            it.next(),
            Some(Ok((1, vec!["assetPath".into(), "a".into()])))
        );
        assert_eq!(it.next(), Some(Ok((2, vec!["/x".into(), "1".into()]))));
        let e = it.next().unwrap().unwrap_err();
        assert_eq!(
            (e.line, e.reason.as_str()),
            (3, "a quoted field is not closed")
        );
        assert_eq!(it.next(), None);
        assert_eq!(iter_records("").count(), 0);
    }

    #[test]
    fn column_parse_reads_one_header() {
        assert_eq!(
            Column::parse("exif:FNumber {{ Double }}"),
            Ok(col("exif:FNumber", Kind::Double, false))
        );
        assert!(Column::parse("a b").is_err());
    }

    #[test]
    fn extreme_values_survive_a_round_trip() {
        let columns = vec![
            col("d", Kind::Double, true),
            col("l", Kind::Long, true),
            col("s", Kind::String, false),
            col("t", Kind::Date, true),
        ];
        let cells = vec![
            [1e-7, 1e300, -0.5, 5e-324, f64::MAX, 123456789.125]
                .map(Value::Double)
                .to_vec(),
            [i64::MIN, i64::MAX, 0].map(Value::Long).to_vec(),
            vec![Value::String("  leading and trailing, ünïcødé ✓  ".into())],
            [
                "2018-10-27T16:20:29-05:00",
                "2024-05-07",
                "2018-10-27T13:27:23.53",
            ]
            .map(|d| Value::Date(d.into()))
            .to_vec(),
        ];
        let text = write_header(&columns) + &write_row("/a", &columns, &cells);
        let read = records(&text).unwrap();
        for (i, column) in columns.iter().enumerate() {
            assert_eq!(parse_cell(column, &read[1].1[i + 1]).unwrap(), cells[i]);
        }
    }
}

//! The export's pure core: asset rows as tasks store them (JSON lines in part
//! renditions), the columns their union makes, and the CSV lines they become.
//!
//! Column rule: a property's column has the kind of its values when every value
//! of it, over all exported assets, has one kind; otherwise (say Long on one
//! asset and String on another) it is a String column holding each value's text.
//! A column is `multi` when some asset has more than one value for it.

use std::collections::BTreeMap;

use damcsv::{Column, Kind, Value};
use serde::{Deserialize, Serialize};

/// One metadata value as a part stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Typed {
    #[serde(rename = "s")]
    Text(String),
    #[serde(rename = "l")]
    Long(i64),
    #[serde(rename = "d")]
    Double(f64),
    #[serde(rename = "b")]
    Boolean(bool),
    #[serde(rename = "t")]
    Date(String),
}

impl Typed {
    fn kind(&self) -> Kind {
        match self {
            Typed::Text(_) => Kind::String,
            Typed::Long(_) => Kind::Long,
            Typed::Double(_) => Kind::Double,
            Typed::Boolean(_) => Kind::Boolean,
            Typed::Date(_) => Kind::Date,
        }
    }

    fn into_value(self) -> Value {
        match self {
            Typed::Text(s) => Value::String(s),
            Typed::Long(n) => Value::Long(n),
            Typed::Double(d) => Value::Double(d),
            Typed::Boolean(b) => Value::Boolean(b),
            Typed::Date(s) => Value::Date(s),
        }
    }
}

/// One asset's row: its path and its properties by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub path: String,
    pub properties: BTreeMap<String, Vec<Typed>>,
}

/// A part rendition's content: one JSON row per line.
pub fn encode_part(rows: &[Row]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        serde_json::to_writer(&mut out, row).expect("a row serializes");
        out.push(b'\n');
    }
    out
}

/// The rows of a part rendition.
pub fn decode_part(data: &[u8]) -> Result<Vec<Row>, String> {
    data.split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).map_err(|e| e.to_string()))
        .collect()
}

/// What the rows seen so far say about each property.
#[derive(Debug, Default)]
pub struct Union {
    seen: BTreeMap<String, Seen>,
}

#[derive(Debug)]
struct Seen {
    /// The one kind of every value so far; `None` once two kinds were seen.
    kind: Option<Kind>,
    multi: bool,
}

impl Union {
    /// Takes one row's properties into account.
    pub fn add(&mut self, row: &Row) {
        for (name, values) in &row.properties {
            let Some(first) = values.first() else {
                continue;
            };
            let seen = self.seen.entry(name.clone()).or_insert(Seen {
                kind: Some(first.kind()),
                multi: false,
            });
            seen.multi |= values.len() > 1;
            if values.iter().any(|v| Some(v.kind()) != seen.kind) {
                seen.kind = None;
            }
        }
    }

    /// The columns: `wanted` in its order when given (a property no asset has
    /// becomes an empty String column), else every property seen, by name.
    /// Also returns the names left out because no CSV header can carry them
    /// (empty, or with white space or braces).
    pub fn columns(&self, wanted: Option<&[String]>) -> (Vec<Column>, Vec<String>) {
        let names: Vec<&String> = match wanted {
            Some(wanted) => wanted.iter().collect(),
            None => self.seen.keys().collect(),
        };
        let mut columns = Vec::new();
        let mut skipped = Vec::new();
        for name in names {
            let (kind, multi) = match self.seen.get(name) {
                Some(seen) => (seen.kind.unwrap_or(Kind::String), seen.multi),
                None => (Kind::String, false),
            };
            let column = Column {
                name: name.clone(),
                kind,
                multi,
            };
            if Column::parse(&column.header()).as_ref() == Ok(&column) {
                columns.push(column);
            } else {
                skipped.push(name.clone());
            }
        }
        (columns, skipped)
    }
}

/// The CSV line of one row under `columns` (with CRLF).
pub fn render_row(mut row: Row, columns: &[Column]) -> String {
    let cells: Vec<Vec<Value>> = columns
        .iter()
        .map(|c| {
            row.properties
                .remove(&c.name)
                .unwrap_or_default()
                .into_iter()
                .map(Typed::into_value)
                .collect()
        })
        .collect();
    damcsv::write_row(&row.path, columns, &cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, props: &[(&str, Vec<Typed>)]) -> Row {
        Row {
            path: path.into(),
            properties: props
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect(),
        }
    }

    fn text(s: &str) -> Typed {
        Typed::Text(s.into())
    }

    #[test]
    fn parts_round_trip_through_json_lines() {
        let rows = vec![
            row(
                "/a",
                &[
                    ("exif:FNumber", vec![Typed::Double(0.1 + 0.2)]),
                    ("dc:subject", vec![text("sea"), text("line\nbreak")]),
                ],
            ),
            row("/b", &[]),
        ];
        let data = encode_part(&rows);
        assert_eq!(data.iter().filter(|b| **b == b'\n').count(), 2);
        assert_eq!(decode_part(&data).unwrap(), rows);
        assert!(decode_part(b"{not json}\n").is_err());
    }

    #[test]
    fn the_union_picks_kind_and_multi_per_property() {
        let mut union = Union::default();
        union.add(&row(
            "/a",
            &[
                ("w", vec![Typed::Long(4032)]),
                ("mixed", vec![Typed::Long(1)]),
                ("tags", vec![text("x")]),
                ("when", vec![Typed::Date("2018-10-27".into())]),
            ],
        ));
        union.add(&row(
            "/b",
            &[
                ("w", vec![Typed::Long(3024)]),
                ("mixed", vec![Typed::Double(1.5)]),
                ("tags", vec![text("y"), text("z")]),
                ("bad name", vec![text("v")]),
            ],
        ));
        let (columns, skipped) = union.columns(None);
        let headers: Vec<String> = columns.iter().map(Column::header).collect();
        assert_eq!(
            headers,
            [
                "mixed {{ String }}",
                "tags {{ String : multi }}",
                "w {{ Long }}",
                "when {{ Date }}"
            ]
        );
        assert_eq!(skipped, ["bad name"]);

        let wanted = ["w".to_string(), "absent".to_string()];
        let (columns, _) = union.columns(Some(&wanted));
        let headers: Vec<String> = columns.iter().map(Column::header).collect();
        assert_eq!(headers, ["w {{ Long }}", "absent {{ String }}"]);
    }

    #[test]
    fn rows_render_under_their_columns_and_read_back() {
        let rows = vec![
            row(
                "/content/dam/a, b.jpg",
                &[
                    ("mixed", vec![Typed::Long(7)]),
                    ("tags", vec![text("a|b"), text("c")]),
                    ("ok", vec![Typed::Boolean(true)]),
                ],
            ),
            row("/content/dam/c.jpg", &[("mixed", vec![text("seven")])]),
        ];
        let mut union = Union::default();
        rows.iter().for_each(|r| union.add(r));
        let (columns, _) = union.columns(None);
        let mut csv = damcsv::write_header(&columns);
        for r in rows {
            csv.push_str(&render_row(r, &columns));
        }
        let records = damcsv::records(&csv).unwrap();
        let read = damcsv::parse_header(&records[0].1).unwrap();
        assert_eq!(read, columns);
        let cell = |r: usize, c: usize| damcsv::parse_cell(&read[c], &records[r].1[c + 1]).unwrap();
        assert_eq!(records[1].1[0], "/content/dam/a, b.jpg");
        assert_eq!(cell(1, 0), vec![Value::String("7".into())]);
        assert_eq!(cell(1, 1), vec![Value::Boolean(true)]);
        assert_eq!(
            cell(1, 2),
            vec![Value::String("a|b".into()), Value::String("c".into())]
        );
        assert_eq!(cell(2, 0), vec![Value::String("seven".into())]);
        assert_eq!(cell(2, 1), vec![]);
    }
}

//! Fuzzes the DAM metadata CSV reader and writer: no panic on any text, and
//! parse → write → parse gives back the same header and the same typed values.
#![no_main]

use damcsv::{parse_cell, parse_header, records, write_header, write_row};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rows) = records(text) else {
        return;
    };
    let Some(((_, header), body)) = rows.split_first() else {
        return;
    };
    let Ok(columns) = parse_header(header) else {
        return;
    };
    // The header as written reads back as the same columns.
    let written = write_header(&columns);
    let reread = records(&written).expect("a written header splits");
    assert_eq!(reread.len(), 1, "{written:?}");
    assert_eq!(
        parse_header(&reread[0].1).as_ref(),
        Ok(&columns),
        "{written:?}"
    );
    for (_, fields) in body {
        let Some((path, cells)) = fields.split_first() else {
            continue;
        };
        // Cells past the header's columns are ignored, missing ones are empty.
        let Ok(values) = columns
            .iter()
            .enumerate()
            .map(|(i, c)| parse_cell(c, cells.get(i).map_or("", String::as_str)))
            .collect::<Result<Vec<_>, _>>()
        else {
            continue;
        };
        // What is written reads back as the same path and values, and writes the same again.
        let line = write_row(path, &columns, &values);
        if line == "\r\n" {
            // An empty path and no columns: a blank line, which readers skip by design.
            continue;
        }
        let file = format!("{written}{line}");
        let reread = records(&file).expect("a written file splits");
        assert_eq!(reread.len(), 2, "{file:?}");
        let fields = &reread[1].1;
        assert_eq!(&fields[0], path, "{file:?}");
        assert_eq!(fields.len(), columns.len() + 1, "{file:?}");
        let again: Vec<_> = columns
            .iter()
            .zip(&fields[1..])
            .map(|(c, cell)| parse_cell(c, cell).expect("a written cell parses"))
            .collect();
        assert_eq!(again, values, "{file:?}");
        assert_eq!(write_row(path, &columns, &again), line);
    }
});

//! Plain-text tables with aligned columns, for the human summaries of the bench studies.

use std::fmt;

/// A table: a header row and data rows of cells, printed with columns padded to equal width
/// (first column left-aligned, the rest right-aligned).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// Column titles.
    pub header: Vec<String>,
    /// Data rows (each as long as the header).
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with the given column titles.
    pub fn new<S: ToString>(header: impl IntoIterator<Item = S>) -> Self {
        Self {
            header: header.into_iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Append a row.
    pub fn push<S: ToString>(&mut self, row: impl IntoIterator<Item = S>) {
        self.rows
            .push(row.into_iter().map(|s| s.to_string()).collect());
    }

    /// Width of column `c`: its widest cell, in characters.
    fn width(&self, c: usize) -> usize {
        std::iter::once(&self.header)
            .chain(&self.rows)
            .filter_map(|r| r.get(c))
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths: Vec<usize> = (0..self.header.len()).map(|c| self.width(c)).collect();
        let line = |f: &mut fmt::Formatter<'_>, row: &[String]| -> fmt::Result {
            for (c, (cell, w)) in row.iter().zip(&widths).enumerate() {
                let sep = if c == 0 { "" } else { "  " };
                if c == 0 {
                    write!(f, "{sep}{cell:<w$}")?;
                } else {
                    write!(f, "{sep}{cell:>w$}")?;
                }
            }
            writeln!(f)
        };
        line(f, &self.header)?;
        let total = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        writeln!(f, "{}", "-".repeat(total))?;
        self.rows.iter().try_for_each(|r| line(f, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(["method", "KL"]);
        t.push(["rfpf", "21.6 ± 0.5"]);
        t.push(["mcl", "193 ± 12"]);
        let s = t.to_string();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "method          KL");
        assert_eq!(lines[2], "rfpf    21.6 ± 0.5");
        assert_eq!(lines[3], "mcl       193 ± 12");
    }
}

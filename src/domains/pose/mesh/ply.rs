//! PLY files: the header and body parsers (ASCII and binary, either endianness) behind
//! [`Mesh::load_ply`], and [`Mesh::write_ply`].

use super::*;

// ---------------------------------------------------------------------------------------------
// PLY header

/// A PLY scalar type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scalar {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl Scalar {
    /// Parses both the PLY 1.0 names (`uchar`) and the sized names (`uint8`).
    fn parse(name: &str) -> Option<Scalar> {
        Some(match name {
            "char" | "int8" => Scalar::I8,
            "uchar" | "uint8" => Scalar::U8,
            "short" | "int16" => Scalar::I16,
            "ushort" | "uint16" => Scalar::U16,
            "int" | "int32" => Scalar::I32,
            "uint" | "uint32" => Scalar::U32,
            "float" | "float32" => Scalar::F32,
            "double" | "float64" => Scalar::F64,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Scalar::I8 | Scalar::U8 => 1,
            Scalar::I16 | Scalar::U16 => 2,
            Scalar::I32 | Scalar::U32 | Scalar::F32 => 4,
            Scalar::F64 => 8,
        }
    }

    fn is_float(self) -> bool {
        matches!(self, Scalar::F32 | Scalar::F64)
    }
}

/// A property of a PLY element: a scalar or a list.
#[derive(Debug, Clone)]
enum PropKind {
    Scalar(Scalar),
    List { count: Scalar, item: Scalar },
}

#[derive(Debug, Clone)]
struct Property {
    name: String,
    kind: PropKind,
}

#[derive(Debug, Clone)]
struct Element {
    name: String,
    count: usize,
    props: Vec<Property>,
}

impl Element {
    /// Index of the scalar property `name`, if any.
    fn scalar(&self, name: &str) -> Option<usize> {
        self.props
            .iter()
            .position(|p| p.name == name && matches!(p.kind, PropKind::Scalar(_)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Encoding {
    Ascii,
    BinaryLe,
    BinaryBe,
}

#[derive(Debug)]
struct Header {
    encoding: Encoding,
    elements: Vec<Element>,
    /// Byte offset of the body.
    body: usize,
}

/// Parses the header of a PLY file held in `bytes`.
fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header> {
    let err =
        |line: usize, msg: String| Error::format(path, format!("PLY header line {line}: {msg}"));
    let mut pos = 0;
    let mut encoding = None;
    let mut elements: Vec<Element> = Vec::new();
    for lineno in 1.. {
        let Some(len) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            return Err(Error::format(path, "PLY header has no end_header line"));
        };
        let line = std::str::from_utf8(&bytes[pos..pos + len])
            .map_err(|_| err(lineno, "not ASCII text".into()))?
            .trim();
        pos += len + 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ply"] if lineno == 1 => {}
            _ if lineno == 1 => {
                return Err(err(1, format!("expected 'ply' magic, found '{line}'")))
            }
            [] | ["comment", ..] | ["obj_info", ..] => {}
            ["format", f, _version] => {
                encoding = Some(match *f {
                    "ascii" => Encoding::Ascii,
                    "binary_little_endian" => Encoding::BinaryLe,
                    "binary_big_endian" => Encoding::BinaryBe,
                    other => return Err(err(lineno, format!("unknown format '{other}'"))),
                })
            }
            ["element", name, count] => {
                let count = count
                    .parse()
                    .map_err(|_| err(lineno, format!("element {name}: bad count '{count}'")))?;
                elements.push(Element {
                    name: name.to_string(),
                    count,
                    props: Vec::new(),
                });
            }
            ["property", "list", ct, it, name] => {
                let kind = match (Scalar::parse(ct), Scalar::parse(it)) {
                    (Some(count), Some(item)) if !count.is_float() => {
                        PropKind::List { count, item }
                    }
                    _ => {
                        return Err(err(
                            lineno,
                            format!("property {name}: bad list types '{ct} {it}'"),
                        ))
                    }
                };
                push_property(&mut elements, name, kind).map_err(|m| err(lineno, m))?;
            }
            ["property", ty, name] => {
                let ty = Scalar::parse(ty)
                    .ok_or_else(|| err(lineno, format!("property {name}: unknown type '{ty}'")))?;
                push_property(&mut elements, name, PropKind::Scalar(ty))
                    .map_err(|m| err(lineno, m))?;
            }
            ["end_header"] => break,
            _ => return Err(err(lineno, format!("unrecognised line '{line}'"))),
        }
    }
    let encoding = encoding.ok_or_else(|| Error::format(path, "PLY header has no format line"))?;
    Ok(Header {
        encoding,
        elements,
        body: pos,
    })
}

/// Appends a property to the last declared element.
fn push_property(
    elements: &mut [Element],
    name: &str,
    kind: PropKind,
) -> std::result::Result<(), String> {
    let el = elements
        .last_mut()
        .ok_or_else(|| format!("property {name} before any element"))?;
    el.props.push(Property {
        name: name.to_string(),
        kind,
    });
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// PLY body

/// A cursor over the body that reads one value at a time as `f64`.
struct Body<'a> {
    bytes: &'a [u8],
    pos: usize,
    encoding: Encoding,
}

impl Body<'_> {
    /// Reads the next value of type `ty`; `None` at the end of the data or on a malformed token.
    fn read(&mut self, ty: Scalar) -> std::result::Result<f64, String> {
        match self.encoding {
            Encoding::Ascii => self.read_ascii(ty),
            _ => self.read_binary(ty),
        }
    }

    fn read_ascii(&mut self, ty: Scalar) -> std::result::Result<f64, String> {
        let rest = &self.bytes[self.pos..];
        let start = rest
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .ok_or("unexpected end of file (truncated body)")?;
        let len = rest[start..]
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .unwrap_or(rest.len() - start);
        self.pos += start + len;
        let token =
            std::str::from_utf8(&rest[start..start + len]).map_err(|_| "non-ASCII value")?;
        let v: f64 = token
            .parse()
            .map_err(|_| format!("malformed number '{token}'"))?;
        if !ty.is_float() && v.fract() != 0.0 {
            return Err(format!(
                "non-integer value '{token}' for an integer property"
            ));
        }
        Ok(v)
    }

    fn read_binary(&mut self, ty: Scalar) -> std::result::Result<f64, String> {
        let n = ty.size();
        let raw = self
            .bytes
            .get(self.pos..self.pos + n)
            .ok_or("unexpected end of file (truncated body)")?;
        self.pos += n;
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(raw);
        if self.encoding == Encoding::BinaryBe {
            b[..n].reverse();
        }
        Ok(match ty {
            Scalar::I8 => i8::from_le_bytes([b[0]]) as f64,
            Scalar::U8 => b[0] as f64,
            Scalar::I16 => i16::from_le_bytes([b[0], b[1]]) as f64,
            Scalar::U16 => u16::from_le_bytes([b[0], b[1]]) as f64,
            Scalar::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            Scalar::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            Scalar::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            Scalar::F64 => f64::from_le_bytes(b),
        })
    }

    /// Reads one element instance: scalar values into `scalars` (by property index; lists get
    /// NaN) and the items of the list property `keep` (if any) into `list`.
    fn read_row(
        &mut self,
        el: &Element,
        keep: Option<usize>,
        scalars: &mut Vec<f64>,
        list: &mut Vec<f64>,
    ) -> std::result::Result<(), String> {
        scalars.clear();
        list.clear();
        for (i, prop) in el.props.iter().enumerate() {
            let ctx = |m: String| format!("property {}: {m}", prop.name);
            match prop.kind {
                PropKind::Scalar(ty) => scalars.push(self.read(ty).map_err(ctx)?),
                PropKind::List { count, item } => {
                    scalars.push(f64::NAN);
                    let n = self.read(count).map_err(ctx)?;
                    if n < 0.0 {
                        return Err(ctx(format!("negative list length {n}")));
                    }
                    for _ in 0..n as usize {
                        let v = self.read(item).map_err(ctx)?;
                        if keep == Some(i) {
                            list.push(v);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Vertex data read from a PLY file, before unit conversion.
#[derive(Default)]
struct RawVertices {
    positions: Vec<Point3<f64>>,
    normals: Option<Vec<Vector3<f64>>>,
    colors: Option<Vec<[u8; 3]>>,
}

/// Reads the `vertex` element.
fn read_vertices(path: &Path, body: &mut Body, el: &Element, scale: f64) -> Result<RawVertices> {
    let field = |name: &str| {
        el.scalar(name).ok_or_else(|| {
            Error::format(
                path,
                format!("PLY element vertex has no scalar property '{name}'"),
            )
        })
    };
    let xyz = [field("x")?, field("y")?, field("z")?];
    let normal = match (el.scalar("nx"), el.scalar("ny"), el.scalar("nz")) {
        (Some(a), Some(b), Some(c)) => Some([a, b, c]),
        _ => None,
    };
    let color = ["red", "green", "blue"]
        .map(|n| el.scalar(n).or_else(|| el.scalar(&format!("diffuse_{n}"))));
    let color = match color {
        [Some(r), Some(g), Some(b)] => Some([r, g, b]),
        _ => None,
    };
    let color_is_float =
        color.is_some_and(|c| matches!(el.props[c[0]].kind, PropKind::Scalar(t) if t.is_float()));
    let mut out = RawVertices {
        positions: Vec::with_capacity(el.count.min(body.bytes.len())),
        normals: normal.map(|_| Vec::with_capacity(el.count.min(body.bytes.len()))),
        colors: color.map(|_| Vec::with_capacity(el.count.min(body.bytes.len()))),
    };
    let (mut row, mut list) = (Vec::new(), Vec::new());
    for i in 0..el.count {
        body.read_row(el, None, &mut row, &mut list)
            .map_err(|m| Error::format(path, format!("PLY vertex {i}: {m}")))?;
        let p = Point3::new(row[xyz[0]], row[xyz[1]], row[xyz[2]]) * scale;
        if !p.coords.iter().all(|c| c.is_finite()) {
            return Err(Error::format(
                path,
                format!("PLY vertex {i}: non-finite position"),
            ));
        }
        out.positions.push(p);
        if let (Some(idx), Some(normals)) = (normal, out.normals.as_mut()) {
            let n = Vector3::new(row[idx[0]], row[idx[1]], row[idx[2]]);
            if !n.iter().all(|c| c.is_finite()) {
                return Err(Error::format(
                    path,
                    format!("PLY vertex {i}: non-finite normal {n:?}"),
                ));
            }
            normals.push(n);
        }
        if let (Some(idx), Some(colors)) = (color, out.colors.as_mut()) {
            let k = if color_is_float { 255.0 } else { 1.0 };
            colors.push(idx.map(|c| (row[c] * k).round().clamp(0.0, 255.0) as u8));
        }
    }
    Ok(out)
}

/// Reads the `face` element, fan-triangulating polygons and checking indices against `n_vertices`.
fn read_faces(
    path: &Path,
    body: &mut Body,
    el: &Element,
    n_vertices: usize,
) -> Result<Vec<[u32; 3]>> {
    let list = el
        .props
        .iter()
        .position(|p| {
            (p.name == "vertex_indices" || p.name == "vertex_index")
                && matches!(p.kind, PropKind::List { .. })
        })
        .ok_or_else(|| {
            Error::format(
                path,
                "PLY element face has no list property 'vertex_indices' or 'vertex_index'",
            )
        })?;
    let mut faces = Vec::with_capacity(el.count.min(body.bytes.len()));
    let (mut row, mut idx) = (Vec::new(), Vec::new());
    for f in 0..el.count {
        let bad = |m: String| Error::format(path, format!("PLY face {f}: {m}"));
        body.read_row(el, Some(list), &mut row, &mut idx)
            .map_err(bad)?;
        if idx.len() < 3 {
            return Err(bad(format!(
                "{} vertex indices, need at least 3",
                idx.len()
            )));
        }
        if let Some(v) = idx.iter().find(|&&v| v < 0.0 || v >= n_vertices as f64) {
            return Err(bad(format!(
                "vertex index {v} out of range 0..{n_vertices}"
            )));
        }
        for k in 1..idx.len() - 1 {
            faces.push([idx[0] as u32, idx[k] as u32, idx[k + 1] as u32]);
        }
    }
    Ok(faces)
}

// ---------------------------------------------------------------------------------------------
// Reading and writing

impl Mesh {
    /// Loads a PLY mesh in millimetres (the BOP convention) and converts it to metres.
    ///
    /// Reads `ascii`, `binary_little_endian` and `binary_big_endian` files with a `vertex` element
    /// (`x, y, z`, optional `nx, ny, nz`, optional `red, green, blue`) and an optional `face` element
    /// (`list <int type> <int type> vertex_indices|vertex_index`; polygons are fan-triangulated).
    /// Other elements are skipped. Normals are normalized, or computed ([`Mesh::compute_normals`])
    /// when absent.
    pub fn load_ply(path: impl AsRef<Path>) -> Result<Mesh> {
        Mesh::load_ply_scaled(path, MM_TO_M)
    }

    /// [`Mesh::load_ply`] with an explicit scale from file units to metres.
    pub fn load_ply_scaled(path: impl AsRef<Path>, scale: f64) -> Result<Mesh> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let header = parse_header(path, &bytes)?;
        let mut body = Body {
            bytes: &bytes,
            pos: header.body,
            encoding: header.encoding,
        };
        let mut verts: Option<RawVertices> = None;
        let mut faces = Vec::new();
        let (mut row, mut list) = (Vec::new(), Vec::new());
        for el in &header.elements {
            if el.props.is_empty() && el.count > 0 {
                // Rows of nothing: reading them would only count (to 2⁶⁴ for a hostile count).
                let what = format!(
                    "PLY element {} has {} rows but no properties",
                    el.name, el.count
                );
                return Err(Error::format(path, what));
            }
            match el.name.as_str() {
                "vertex" if verts.is_some() => {
                    // The faces read so far index the first vertex element.
                    return Err(Error::format(path, "PLY file has a second vertex element"));
                }
                "vertex" => verts = Some(read_vertices(path, &mut body, el, scale)?),
                "face" => {
                    let n = verts.as_ref().map_or(0, |v| v.positions.len());
                    faces = read_faces(path, &mut body, el, n)?;
                }
                _ => {
                    for i in 0..el.count {
                        body.read_row(el, None, &mut row, &mut list).map_err(|m| {
                            Error::format(path, format!("PLY {} {i}: {m}", el.name))
                        })?;
                    }
                }
            }
        }
        let v = verts.ok_or_else(|| Error::format(path, "PLY file has no vertex element"))?;
        let mut mesh = Mesh {
            normals: Vec::new(),
            vertices: v.positions,
            faces,
            colors: v.colors,
        };
        mesh.set_normals(v.normals);
        Ok(mesh)
    }

    /// Writes the mesh as a `binary_little_endian` PLY in millimetres (float x, y, z, nx, ny, nz,
    /// optional uchar red, green, blue; `list uchar int vertex_indices`), readable by
    /// [`Mesh::load_ply`].
    pub fn write_ply(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut out = Vec::new();
        let colour_props = if self.colors.is_some() {
            "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        } else {
            ""
        };
        let header = format!(
            "ply\nformat binary_little_endian 1.0\ncomment written by hdpf, units mm\nelement vertex {}\n\
             property float x\nproperty float y\nproperty float z\nproperty float nx\nproperty float ny\n\
             property float nz\n{colour_props}element face {}\nproperty list uchar int vertex_indices\nend_header\n",
            self.vertices.len(),
            self.faces.len()
        );
        out.extend_from_slice(header.as_bytes());
        for (i, (p, n)) in self.vertices.iter().zip(&self.normals).enumerate() {
            for c in p
                .coords
                .iter()
                .map(|c| c / MM_TO_M)
                .chain(n.iter().copied())
            {
                out.extend_from_slice(&(c as f32).to_le_bytes());
            }
            if let Some(colors) = &self.colors {
                out.extend_from_slice(&colors.get(i).copied().unwrap_or([0; 3]));
            }
        }
        for f in &self.faces {
            out.push(3);
            for &v in f {
                out.extend_from_slice(&(v as i32).to_le_bytes());
            }
        }
        std::fs::File::create(path)
            .and_then(|mut file| file.write_all(&out))
            .map_err(|e| Error::io(path, e))
    }
}

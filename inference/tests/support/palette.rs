//! A palette PNG bomb: a few KB that declare `side`² pixels, all index 0, for the tests of what decoding costs.

/// A 1-bit palette PNG of `side`² pixels: a few KB that decode to `side`² × 3 bytes.
pub fn palette_png(side: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::One);
    encoder.set_palette(vec![0, 0, 0, 255, 255, 255]);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header().expect("a PNG header");
    let row = vec![0u8; side.div_ceil(8) as usize];
    let data: Vec<u8> = (0..side).flat_map(|_| row.iter().copied()).collect();
    writer.write_image_data(&data).expect("the PNG's pixels");
    writer.finish().expect("a whole PNG");
    out
}

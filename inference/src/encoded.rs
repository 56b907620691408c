//! Encoded images (PNG or JPEG files as they are) turned into the model's 64×64×3 input, the one preprocessing the
//! web page, the `classify` command and the `encoded_images` input of ModelInfer share, so a photo gets the same
//! answer whichever way it comes in.
//!
//! The bytes are untrusted. An image's header declares its size and colour type, and so what decoding it will
//! allocate and how long it will take: [`inspect`] reads only the header, so a request's images are held to its
//! budget ([`crate::budget`]) before any is decoded. An 8 KB palette PNG can declare 8192×8192 pixels (256 MiB
//! decoded): it is refused unless the call can afford it. The decoder is also capped at the declared size.

use crate::input_error::{InputError, invalid};
use crate::model::{IMAGE_SHAPE, IMAGE_VALUES};
use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// Larger than any phone camera's picture, small enough that a decode is bounded (8192² RGBA is 256 MiB).
pub const MAX_SIDE: u32 = 8192;
/// Encoded images one request may carry.
pub const MAX_BATCH: usize = 64;

/// An image whose header has been read and found to be PNG or JPEG within [`MAX_SIDE`].
#[derive(Debug)]
pub struct Encoded<'a> {
    bytes: &'a [u8],
    name: String,
    format: ImageFormat,
    width: u32,
    height: u32,
    bytes_per_pixel: u8,
}

/// Reads the header of `bytes` (`name` says which image in errors); decodes nothing.
pub fn inspect(bytes: &[u8], name: String) -> Result<Encoded<'_>, InputError> {
    let reader = reader(bytes, &name)?;
    let format = reader.format().ok_or_else(|| InputError::new(format!("{name} is neither PNG nor JPEG")))?;
    let decoder = reader.into_decoder().map_err(|e| InputError::new(format!("{name}: cannot read it: {e}")))?;
    let (width, height) = decoder.dimensions();
    let bytes_per_pixel = decoder.color_type().bytes_per_pixel();
    Ok(Encoded { bytes, name, format, width, height, bytes_per_pixel })
}

fn reader<'a>(bytes: &'a [u8], name: &str) -> Result<ImageReader<Cursor<&'a [u8]>>, InputError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| InputError::new(format!("{name}: cannot read it: {e}")))?;
    if !matches!(reader.format(), Some(ImageFormat::Png | ImageFormat::Jpeg)) {
        return invalid(format!("{name} is neither PNG nor JPEG"));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(u64::from(MAX_SIDE) * u64::from(MAX_SIDE) * 4);
    reader.limits(limits);
    Ok(reader)
}

impl Encoded<'_> {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The declared pixels.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// What decoding and resizing it allocates at most: the picture at its declared colour type (a JPEG's
    /// decoder holds a second copy while it converts colours), and the resize's intermediate rows (the
    /// picture's width × 64 rows of four f32s).
    pub fn decode_bytes(&self) -> u64 {
        let copies = if self.format == ImageFormat::Jpeg { 2 } else { 1 };
        let picture = self.pixels() * u64::from(self.bytes_per_pixel) * copies;
        picture + u64::from(self.width) * IMAGE_SHAPE[0] as u64 * 16
    }

    /// Decodes it and resizes it to 64×64 RGB (bilinear, like the reference's data set was made).
    pub fn decode(&self) -> Result<Vec<u8>, InputError> {
        let decoder = reader(self.bytes, &self.name)?
            .into_decoder()
            .map_err(|e| InputError::new(format!("{}: cannot read it: {e}", self.name)))?;
        if decoder.dimensions() != (self.width, self.height) {
            return invalid(format!("{}: its header changed between two reads", self.name));
        }
        let image = DynamicImage::from_decoder(decoder)
            .map_err(|e| InputError::new(format!("{}: cannot decode it as PNG or JPEG: {e}", self.name)))?;
        let (height, width) = (IMAGE_SHAPE[0] as u32, IMAGE_SHAPE[1] as u32);
        let image = if image.width() == width && image.height() == height {
            image
        } else {
            image.resize_exact(width, height, FilterType::Triangle)
        };
        let pixels = image.to_rgb8().into_raw();
        debug_assert_eq!(pixels.len(), IMAGE_VALUES);
        Ok(pixels)
    }
}

/// Decodes one PNG or JPEG from a trusted source (a local file) into the model's 64×64×3 input.
pub fn to_pixels(bytes: &[u8], name: &str) -> Result<Vec<u8>, InputError> {
    inspect(bytes, name.to_owned())?.decode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    fn png(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let image = RgbImage::from_fn(width, height, |x, y| image::Rgb(pixel(x, y)));
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_64_pixel_png_keeps_its_exact_pixels() {
        let bytes = png(64, 64, |x, y| [x as u8, y as u8, (x * y) as u8]);
        let pixels = to_pixels(&bytes, "a").unwrap();
        assert_eq!(pixels.len(), IMAGE_VALUES);
        assert_eq!(&pixels[..6], &[0, 0, 0, 1, 0, 0]);
        assert_eq!(&pixels[(63 * 64 + 63) * 3..], &[63, 63, (63 * 63) as u8]);
    }

    #[test]
    fn larger_images_are_resized() {
        let pixels = to_pixels(&png(640, 480, |_, _| [200, 100, 50]), "photo").unwrap();
        assert_eq!(pixels.len(), IMAGE_VALUES);
        assert!(pixels.chunks(3).all(|p| p == [200, 100, 50]));
    }

    #[test]
    fn the_header_tells_the_cost_before_decoding() {
        let bytes = png(640, 480, |_, _| [1, 2, 3]);
        let image = inspect(&bytes, "photo".into()).unwrap();
        assert_eq!(image.pixels(), 640 * 480);
        assert_eq!(image.decode_bytes(), 640 * 480 * 3 + 640 * 64 * 16);
    }

    #[test]
    fn garbage_and_bombs_are_refused_with_the_name() {
        let error = to_pixels(b"not an image at all", "upload.png").unwrap_err().to_string();
        assert_eq!(error, "upload.png is neither PNG nor JPEG");
        // A PNG header claiming 100000×100000 pixels: refused from the header, before any allocation.
        let mut bomb = png(1, 1, |_, _| [0, 0, 0]);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let error = to_pixels(&bomb, "bomb.png").unwrap_err().to_string();
        assert!(error.starts_with("bomb.png: cannot read it"), "{error}");
    }
}

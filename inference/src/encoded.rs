//! Encoded images (PNG or JPEG files as they are) turned into the model's 64×64×3 input, the one preprocessing the
//! web page, the `classify` command and the `encoded_images` input of ModelInfer share, so a photo gets the same
//! answer whichever way it comes in.
//!
//! The bytes are untrusted: the decoder is bounded in dimensions and memory before it allocates, so a small file
//! that claims a huge picture (a decompression bomb) is refused instead of taking the server's memory.

use crate::model::{IMAGE_SHAPE, IMAGE_VALUES};
use crate::tensor::{InputError, invalid};
use image::imageops::FilterType;
use image::{ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// Larger than any phone camera's picture, small enough that a decode is bounded (8192² RGBA is 256 MiB).
pub const MAX_SIDE: u32 = 8192;
/// Encoded images one request may carry: each decode can take up to a second of a core.
pub const MAX_BATCH: usize = 64;

/// Decodes one PNG or JPEG and resizes it to 64×64 RGB (bilinear, like the reference's data set was made);
/// `name` says which one in errors.
pub fn to_pixels(bytes: &[u8], name: &str) -> Result<Vec<u8>, InputError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| InputError(format!("{name}: cannot read it: {e}")))?;
    if !matches!(reader.format(), Some(ImageFormat::Png | ImageFormat::Jpeg)) {
        return invalid(format!("{name} is neither PNG nor JPEG"));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(u64::from(MAX_SIDE) * u64::from(MAX_SIDE) * 4);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| InputError(format!("{name}: cannot decode it as PNG or JPEG: {e}")))?;
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
    fn garbage_and_bombs_are_refused_with_the_name() {
        let error = to_pixels(b"not an image at all", "upload.png").unwrap_err().0;
        assert_eq!(error, "upload.png is neither PNG nor JPEG");
        // A PNG header claiming 100000×100000 pixels: refused from the header, before any allocation.
        let mut bomb = png(1, 1, |_, _| [0, 0, 0]);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        let error = to_pixels(&bomb, "bomb.png").unwrap_err().0;
        assert!(error.starts_with("bomb.png: cannot decode it"), "{error}");
    }
}

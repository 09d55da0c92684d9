// PNG and JPEG reading and writing for the engine (libpng 1.6, libjpeg-turbo). Implemented in
// imageio.c.
//
// Decoding turns any PNG (every bit depth and colour type, interlaced or not) or baseline /
// progressive JPEG (grayscale, YCbCr/RGB, CMYK/YCCK) into 8-bit interleaved RGB, reproducing
// Pillow's `Image.open(f).convert("RGB")` sample for sample:
//   - alpha (an alpha channel or a tRNS chunk) is dropped, not composited;
//   - 16-bit RGB, RGBA and gray+alpha keep the high byte of each sample (Pillow's ";16B" unpackers);
//   - 16-bit gray without alpha is clamped to 255 (Pillow opens it as "I;16", whose conversion to
//     RGB clips: a value of 1000 becomes 255, not 3);
//   - 1/2/4-bit gray is scaled to 0..255 (x*255, x*85, x*17); palette indices outside PLTE are black;
//   - gAMA, cHRM, sRGB, iCCP and EXIF orientation are ignored, as Pillow's open/convert ignores them;
//   - JPEG uses libjpeg's defaults (islow IDCT, fancy upsampling) as Pillow does; CMYK samples are
//     read with Adobe polarity (inverted) and converted with Pillow's `cmyk2rgb` integer formula.
// Measured: identical bytes to Pillow 13.0 (which bundles libjpeg-turbo 3.2) with the system
// libjpeg-turbo 2.1.5, over the committed fixtures and a 300-file random sweep of each format.
// Truncation: data ending before the image data does (PNG) or before EOI (JPEG) is
// CIMG_ERR_TRUNCATED, as Pillow's "image file is truncated"; after complete PNG image data a
// missing or damaged tail (later chunks, IEND) is forgiven as Pillow forgives it. (Pillow also
// accepts a PNG cut inside the final zlib checksum; this decoder calls that truncated.)
// Encoding writes 8-bit RGB PNGs with tEXt / iTXt chunks before IDAT, no tIME chunk, and a fixed
// compression level and filter choice, so the same input gives the same bytes.
//
// Every function is reentrant: no global state, errors come back as a status plus a message in a
// caller-owned buffer (libpng and libjpeg errors are caught with setjmp/longjmp; nothing leaks).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What went wrong; `CIMG_OK` is success.
typedef enum cimg_status {
  CIMG_OK = 0,
  /// The bytes start with neither the PNG signature nor a JPEG SOI marker.
  CIMG_ERR_NOT_AN_IMAGE = 1,
  /// The data ends before the image does.
  CIMG_ERR_TRUNCATED = 2,
  /// The library rejected the data; the message holds its text.
  CIMG_ERR_CORRUPT = 3,
  /// A side is longer than the caller's limit (or zero).
  CIMG_ERR_TOO_LARGE = 4,
  /// Valid but not handled (e.g. 12-bit JPEG, 2-component JPEG).
  CIMG_ERR_UNSUPPORTED = 5,
  CIMG_ERR_OUT_OF_MEMORY = 6,
  /// Bad arguments from the caller (null pointers, bad sizes, invalid text keyword).
  CIMG_ERR_ARGUMENT = 7,
  /// A file could not be opened or read; the message holds strerror.
  CIMG_ERR_IO = 8,
} cimg_status;

/// Which decoder handled the data.
typedef enum cimg_format { CIMG_FORMAT_UNKNOWN = 0, CIMG_FORMAT_PNG = 1, CIMG_FORMAT_JPEG = 2 } cimg_format;

#define CIMG_MESSAGE_CAPACITY 256

/// A caller-owned buffer for the human-readable reason of a failure.
typedef struct cimg_error {
  char message[CIMG_MESSAGE_CAPACITY];
} cimg_error;

/// One PNG text chunk as stored: `key` is a NUL-terminated Latin-1 keyword; `text` holds
/// `text_length` bytes (plus a trailing NUL), UTF-8 when `is_utf8` (iTXt), else Latin-1 (tEXt, zTXt).
typedef struct cimg_text {
  char *key;
  char *text;
  size_t text_length;
  int32_t is_utf8;
} cimg_text;

/// A decoded image: `pixels` holds width*height*3 bytes, rows top to bottom, RGB interleaved.
/// Owned by the struct; free with `cimg_image_release`.
typedef struct cimg_image {
  int32_t width;
  int32_t height;
  /// RGB, 3 bytes a pixel, rows top to bottom; the colour channels as stored, alpha not applied.
  uint8_t *pixels;
  /// Opacity, 1 byte a pixel (0 transparent … 255 opaque), or NULL when the image has none: PNG
  /// alpha channels (RGBA, gray+alpha) and tRNS transparency (palette entries, a gray or RGB key).
  uint8_t *alpha;
  int32_t format;
  size_t text_count;
  cimg_text *texts;
} cimg_image;

/// Decoding options (bit flags).
enum {
  /// Also collect PNG text chunks (tEXt, zTXt, iTXt, before and after the image data).
  CIMG_DECODE_TEXT = 1,
  /// Treat a damaged or missing tail after complete PNG image data (chunks after IDAT, IEND) as
  /// an error. Without it the image is returned, as Pillow does.
  CIMG_DECODE_STRICT_END = 2,
};

/// Decodes a PNG or JPEG held in memory (the format is chosen by its magic bytes).
/// `max_side`: largest accepted width or height; `max_pixels`: largest accepted width × height,
/// checked from the header before any pixel memory is allocated. On success `*out` owns its buffers; on failure
/// `*out` holds no buffers and `error->message` says why (a detail, without the file name or the
/// kind of failure, which the status gives). After `CIMG_ERR_TOO_LARGE` `out->width` and
/// `out->height` hold the sizes the header declares.
cimg_status cimg_decode(
  const uint8_t *data, size_t size, int32_t max_side, int64_t max_pixels, int32_t flags, cimg_image *out,
  cimg_error *error);

/// Reads the file at `path` and decodes it like `cimg_decode`. I/O failures give `CIMG_ERR_IO`.
cimg_status cimg_decode_file(
  const char *path, int32_t max_side, int64_t max_pixels, int32_t flags, cimg_image *out, cimg_error *error);

/// Frees what a successful decode allocated and zeroes the struct. Safe on a zeroed struct.
void cimg_image_release(cimg_image *image);

/// A text chunk to write. `key`: NUL-terminated Latin-1 keyword of 1..79 bytes, printable, no
/// leading, trailing or double spaces. `text`: `text_length` bytes without NUL; UTF-8 when
/// `is_utf8` (written as iTXt), else Latin-1 (written as tEXt). Both uncompressed.
typedef struct cimg_text_input {
  const char *key;
  const uint8_t *text;
  size_t text_length;
  int32_t is_utf8;
} cimg_text_input;

/// zlib level `cimg_encode_png` uses.
#define CIMG_PNG_COMPRESSION_LEVEL 6

/// Encodes `width`×`height` 8-bit RGB pixels (rows top to bottom, interleaved) as a
/// non-interlaced 8-bit RGB PNG: IHDR, the text chunks in the given order, IDAT, IEND. zlib level
/// `CIMG_PNG_COMPRESSION_LEVEL` and libpng's adaptive filter choice; no tIME, gAMA or sRGB chunk.
/// On success `*out_data` (free with `cimg_buffer_release`) holds `*out_size` bytes.
cimg_status cimg_encode_png(
  const uint8_t *pixels, int32_t width, int32_t height, const cimg_text_input *texts, size_t text_count,
  uint8_t **out_data, size_t *out_size, cimg_error *error);

/// Frees a buffer returned by `cimg_encode_png`. Safe on NULL.
void cimg_buffer_release(uint8_t *buffer);

/// Writes `size` bytes to `path` atomically: into a new temporary file beside it (same directory,
/// named `<path>.tmp-XXXXXX`, mode 0644), flushed to disk, then renamed over `path`, and the
/// directory flushed (best effort). On failure the
/// temporary file is removed, `path` is untouched and the message says which step failed and why
/// (strerror: "No space left on device", "Permission denied", ...).
cimg_status cimg_write_file_atomic(const char *path, const uint8_t *data, size_t size, cimg_error *error);

/// Whether `key` is a valid PNG keyword (1..79 Latin-1 bytes, 32..126 or 161..255, no leading,
/// trailing or consecutive spaces). libpng would otherwise silently rewrite it.
int32_t cimg_png_keyword_is_valid(const char *key);

#ifdef __cplusplus
}
#endif

// PNG and JPEG decoding to 8-bit RGB, PNG encoding with text chunks, atomic file writes.
// The conversions reproduce Pillow's `Image.open(f).convert("RGB")`; see CImageIO.h for the rules.
//
// Error handling: libpng and libjpeg report fatal errors through callbacks that must not
// return. Both decoders keep all their state in one heap-allocated struct created before
// `setjmp`, so nothing the callbacks or the landing code touch lives in a local variable that
// changes between `setjmp` and `longjmp` (C11 7.13.2.1), and every buffer is freed on every path.

#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L  // mkstemp, fchmod, O_CLOEXEC, strerror_r
#endif

#include "CImageIO.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <png.h>
// jpeglib.h needs FILE and size_t from stdio.h first.
#include <jerror.h>
#include <jpeglib.h>

// MARK: - Small helpers

static cimg_status fail(cimg_error *error, cimg_status status, const char *format, ...)
  __attribute__((format(printf, 3, 4)));

static cimg_status fail(cimg_error *error, cimg_status status, const char *format, ...) {
  if (error != NULL) {
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(error->message, sizeof error->message, format, arguments);
    va_end(arguments);
  }
  return status;
}

static void clear_error(cimg_error *error) {
  if (error != NULL) error->message[0] = '\0';
}

/// strerror without the shared static buffer (both the GNU and XSI strerror_r forms).
static void describe_errno(int code, char *buffer, size_t capacity) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  const char *text = strerror_r(code, buffer, capacity);
  if (text != buffer) snprintf(buffer, capacity, "%s", text);
#else
  if (strerror_r(code, buffer, capacity) != 0) snprintf(buffer, capacity, "error %d", code);
#endif
}

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static char *copy_bytes(const char *bytes, size_t length) {
  char *copy = malloc(length + 1);
  if (copy == NULL) return NULL;
  if (length > 0) memcpy(copy, bytes, length);
  copy[length] = '\0';
  return copy;
}

static void free_texts(cimg_text *texts, size_t count) {
  if (texts == NULL) return;
  for (size_t i = 0; i < count; i++) {
    free(texts[i].key);
    free(texts[i].text);
  }
  free(texts);
}

void cimg_image_release(cimg_image *image) {
  if (image == NULL) return;
  free(image->pixels);
  free(image->alpha);
  free_texts(image->texts, image->text_count);
  memset(image, 0, sizeof *image);
}

void cimg_buffer_release(uint8_t *buffer) { free(buffer); }

int32_t cimg_png_keyword_is_valid(const char *key) {
  if (key == NULL) return 0;
  size_t length = strlen(key);
  if (length < 1 || length > 79) return 0;
  if (key[0] == ' ' || key[length - 1] == ' ') return 0;
  for (size_t i = 0; i < length; i++) {
    unsigned char c = (unsigned char)key[i];
    if (!((c >= 32 && c <= 126) || c >= 161)) return 0;
    if (c == ' ' && i + 1 < length && key[i + 1] == ' ') return 0;
  }
  return 1;
}

// MARK: - PNG decoding

enum { PHASE_HEADER = 0, PHASE_PIXELS = 1, PHASE_END = 2 };

/// Everything the PNG decoder owns; heap-allocated so it survives longjmp intact.
typedef struct png_reader {
  const uint8_t *data;
  size_t size;
  size_t offset;
  int truncated;
  int phase;
  cimg_status status;  // set before a deliberate failure; CIMG_OK means "use the libpng message"
  char message[CIMG_MESSAGE_CAPACITY];
  uint8_t *raw;       // rows as libpng delivers them (1-4 channels, 8 or 16 bits)
  png_bytep *rows;
  uint8_t *pixels;    // the RGB result
  uint8_t *alpha;     // opacity per pixel, when the image has any transparency (else NULL)
} png_reader;

static void png_reader_read(png_structp png, png_bytep destination, size_t length) {
  png_reader *reader = png_get_io_ptr(png);
  if (length > reader->size - reader->offset) {
    reader->truncated = 1;
    png_error(png, "unexpected end of data");
  }
  memcpy(destination, reader->data + reader->offset, length);
  reader->offset += length;
}

static void png_reader_error(png_structp png, png_const_charp message) {
  png_reader *reader = png_get_error_ptr(png);
  snprintf(reader->message, sizeof reader->message, "%s", message);
  png_longjmp(png, 1);
}

static void png_quiet_warning(png_structp png, png_const_charp message) {
  (void)png;
  (void)message;
}

/// Turns libpng's rows (after the transforms chosen in decode_png) into RGB.
static void png_rows_to_rgb(
  png_reader *reader, png_structp png, png_infop info, uint32_t width, uint32_t height, size_t row_bytes,
  int color_type, int output_depth, int channels) {
  uint8_t palette[256][3];
  uint8_t palette_alpha[256];
  memset(palette_alpha, 255, sizeof palette_alpha);
  // tRNS: alpha per palette entry, or one gray / RGB value that is fully transparent (compared at
  // the stored bit depth; 8-bit output of sub-byte gray is scaled, so the key is scaled likewise).
  png_bytep trans_alpha = NULL;
  int trans_count = 0;
  png_color_16p trans_color = NULL;
  int has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0 &&
                 png_get_tRNS(png, info, &trans_alpha, &trans_count, &trans_color) != 0;
  if (has_trns && color_type == PNG_COLOR_TYPE_PALETTE && trans_alpha != NULL) {
    if (trans_count > 256) trans_count = 256;
    for (int i = 0; i < trans_count; i++) palette_alpha[i] = trans_alpha[i];
  }
  int stored_depth = png_get_bit_depth(png, info);
  unsigned key_gray = 0, key_r = 0, key_g = 0, key_b = 0;
  int gray_key = has_trns && trans_color != NULL && color_type == PNG_COLOR_TYPE_GRAY && output_depth == 8;
  int rgb_key = has_trns && trans_color != NULL && color_type == PNG_COLOR_TYPE_RGB && output_depth == 8;
  if (gray_key) {
    unsigned g = trans_color->gray;
    // Sub-byte gray was expanded to 8 bits (v * 255 / max); 16-bit was stripped to its high byte.
    key_gray = stored_depth < 8 ? g * 255u / ((1u << stored_depth) - 1u) : stored_depth == 16 ? g >> 8 : g;
  }
  if (rgb_key) {
    int shift = stored_depth == 16 ? 8 : 0;
    key_r = trans_color->red >> shift;
    key_g = trans_color->green >> shift;
    key_b = trans_color->blue >> shift;
  }
  uint8_t *alpha = reader->alpha;
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    // Indices past the PLTE entries map to black, as in Pillow.
    memset(palette, 0, sizeof palette);
    png_colorp entries = NULL;
    int count = 0;
    if (png_get_PLTE(png, info, &entries, &count) != 0 && entries != NULL) {
      if (count > 256) count = 256;
      for (int i = 0; i < count; i++) {
        palette[i][0] = entries[i].red;
        palette[i][1] = entries[i].green;
        palette[i][2] = entries[i].blue;
      }
    }
  }
  for (uint32_t y = 0; y < height; y++) {
    const uint8_t *in = reader->raw + (size_t)y * row_bytes;
    uint8_t *out = reader->pixels + (size_t)y * width * 3;
    uint8_t *a = alpha != NULL ? alpha + (size_t)y * width : NULL;
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
      for (uint32_t x = 0; x < width; x++) memcpy(out + 3 * x, palette[in[x]], 3);
      if (a != NULL) for (uint32_t x = 0; x < width; x++) a[x] = palette_alpha[in[x]];
    } else if (output_depth == 16) {
      // Only 16-bit gray without alpha is left at 16 bits: Pillow's "I;16" → RGB clips at 255.
      for (uint32_t x = 0; x < width; x++) {
        unsigned value = ((unsigned)in[2 * x] << 8) | in[2 * x + 1];
        uint8_t v = value > 255 ? 255 : (uint8_t)value;
        out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
      }
    } else if (channels == 1 || channels == 2) {
      for (uint32_t x = 0; x < width; x++) {
        uint8_t v = in[(size_t)x * channels];
        out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
      }
      if (a != NULL && channels == 2) for (uint32_t x = 0; x < width; x++) a[x] = in[2 * x + 1];
      if (a != NULL && channels == 1 && gray_key) for (uint32_t x = 0; x < width; x++) a[x] = in[x] == key_gray ? 0 : 255;
    } else if (channels == 3) {
      memcpy(out, in, (size_t)width * 3);
      if (a != NULL && rgb_key) {
        for (uint32_t x = 0; x < width; x++) {
          a[x] = in[3 * x] == key_r && in[3 * x + 1] == key_g && in[3 * x + 2] == key_b ? 0 : 255;
        }
      }
    } else {
      for (uint32_t x = 0; x < width; x++) memcpy(out + 3 * x, in + 4 * x, 3);
      if (a != NULL) for (uint32_t x = 0; x < width; x++) a[x] = in[4 * x + 3];
    }
  }
}

static cimg_status collect_png_texts(png_structp png, png_infop info, cimg_image *out) {
  png_textp texts = NULL;
  int count = png_get_text(png, info, &texts, NULL);
  if (count <= 0 || texts == NULL) return CIMG_OK;
  cimg_text *copies = calloc((size_t)count, sizeof *copies);
  if (copies == NULL) return CIMG_ERR_OUT_OF_MEMORY;
  for (int i = 0; i < count; i++) {
    int is_utf8 = texts[i].compression == PNG_ITXT_COMPRESSION_NONE || texts[i].compression == PNG_ITXT_COMPRESSION_zTXt;
    size_t length = is_utf8 ? texts[i].itxt_length : texts[i].text_length;
    const char *text = texts[i].text != NULL ? texts[i].text : "";
    if (texts[i].text == NULL) length = 0;
    copies[i].key = copy_bytes(texts[i].key != NULL ? texts[i].key : "", texts[i].key != NULL ? strlen(texts[i].key) : 0);
    copies[i].text = copy_bytes(text, length);
    copies[i].text_length = length;
    copies[i].is_utf8 = is_utf8;
    if (copies[i].key == NULL || copies[i].text == NULL) {
      free_texts(copies, (size_t)count);
      return CIMG_ERR_OUT_OF_MEMORY;
    }
  }
  out->texts = copies;
  out->text_count = (size_t)count;
  return CIMG_OK;
}

static cimg_status decode_png(
  const uint8_t *data, size_t size, int32_t max_side, int64_t max_pixels, int32_t flags, cimg_image *out,
  cimg_error *error) {
  png_reader *reader = calloc(1, sizeof *reader);
  if (reader == NULL) return fail(error, CIMG_ERR_OUT_OF_MEMORY, "out of memory");
  reader->data = data;
  reader->size = size;

  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, reader, png_reader_error, png_quiet_warning);
  if (png == NULL) {
    free(reader);
    return fail(error, CIMG_ERR_OUT_OF_MEMORY, "cannot create a libpng reader");
  }
  png_infop info = png_create_info_struct(png);
  if (info == NULL) {
    png_destroy_read_struct(&png, NULL, NULL);
    free(reader);
    return fail(error, CIMG_ERR_OUT_OF_MEMORY, "cannot create a libpng reader");
  }

  cimg_status status = CIMG_OK;
  if (setjmp(png_jmpbuf(png)) != 0) {
    // libpng (or our read callback) failed. After complete pixel data a damaged tail is
    // forgiven unless the caller asked for strictness, as Pillow forgives it.
    if (reader->phase == PHASE_END && (flags & CIMG_DECODE_STRICT_END) == 0) goto succeed;
    if (reader->truncated) {
      status = fail(error, CIMG_ERR_TRUNCATED, "the data ends before the %s",
                    reader->phase == PHASE_HEADER ? "image header" : reader->phase == PHASE_PIXELS ? "image data" : "IEND chunk");
    } else if (reader->status != CIMG_OK) {
      status = fail(error, reader->status, "%s", reader->message);
    } else {
      status = fail(error, CIMG_ERR_CORRUPT, "%s", reader->message);
    }
    goto cleanup;
  }

  // Our own limit replaces libpng's default (1,000,000 px) so oversized images get a clear message.
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_set_read_fn(png, reader, png_reader_read);
  png_read_info(png, info);

  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;
  png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
  if (width == 0 || height == 0 || width > (png_uint_32)max_side || height > (png_uint_32)max_side ||
      (int64_t)width * (int64_t)height > max_pixels) {
    status = fail(error, CIMG_ERR_TOO_LARGE, "image is %u×%u pixels; each side must be 1...%d and the area at most %lld",
                  (unsigned)width, (unsigned)height, (int)max_side, (long long)max_pixels);
    out->width = (int32_t)(width > 0x7fffffff ? 0x7fffffff : width);
    out->height = (int32_t)(height > 0x7fffffff ? 0x7fffffff : height);
    goto cleanup;
  }

  // Transforms: leave 16-bit gray (no alpha) at 16 bits to clamp it ourselves; strip every other
  // 16-bit sample to its high byte; unpack sub-byte palette indices; scale sub-byte gray.
  int keep_16 = bit_depth == 16 && color_type == PNG_COLOR_TYPE_GRAY;
  if (bit_depth == 16 && !keep_16) png_set_strip_16(png);
  if (color_type == PNG_COLOR_TYPE_PALETTE && bit_depth < 8) png_set_packing(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  (void)png_set_interlace_handling(png);
  png_read_update_info(png, info);

  size_t row_bytes = png_get_rowbytes(png, info);
  int channels = png_get_channels(png, info);
  int output_depth = png_get_bit_depth(png, info);
  if (channels < 1 || channels > 4 || row_bytes < (size_t)width * channels * (output_depth == 16 ? 2 : 1)) {
    status = fail(error, CIMG_ERR_UNSUPPORTED, "unexpected PNG layout (%d channels, %d bits)", channels, output_depth);
    goto cleanup;
  }
  reader->raw = malloc(row_bytes * height);
  reader->rows = malloc(sizeof(png_bytep) * height);
  reader->pixels = malloc((size_t)width * height * 3);
  // An opacity plane when the image can be transparent (alpha channel, or tRNS on 8-bit output).
  int transparent = (color_type & PNG_COLOR_MASK_ALPHA) != 0 ||
                    (png_get_valid(png, info, PNG_INFO_tRNS) != 0 && output_depth == 8);
  if (transparent) reader->alpha = malloc((size_t)width * height);
  if (reader->raw == NULL || reader->rows == NULL || reader->pixels == NULL || (transparent && reader->alpha == NULL)) {
    status = fail(error, CIMG_ERR_OUT_OF_MEMORY, "out of memory for a %u×%u image", (unsigned)width, (unsigned)height);
    goto cleanup;
  }
  for (png_uint_32 y = 0; y < height; y++) reader->rows[y] = reader->raw + (size_t)y * row_bytes;

  reader->phase = PHASE_PIXELS;
  png_read_image(png, reader->rows);
  png_rows_to_rgb(reader, png, info, width, height, row_bytes, color_type, output_depth, channels);
  free(reader->raw);
  reader->raw = NULL;
  free(reader->rows);
  reader->rows = NULL;

  // Chunks after the image data (text may live there) up to IEND.
  reader->phase = PHASE_END;
  png_read_end(png, info);

succeed:
  if ((flags & CIMG_DECODE_TEXT) != 0) {
    status = collect_png_texts(png, info, out);
    if (status != CIMG_OK) {
      fail(error, status, "out of memory for text chunks");
      goto cleanup;
    }
  }
  out->width = (int32_t)png_get_image_width(png, info);
  out->height = (int32_t)png_get_image_height(png, info);
  out->pixels = reader->pixels;
  out->alpha = reader->alpha;
  out->format = CIMG_FORMAT_PNG;
  reader->pixels = NULL;
  reader->alpha = NULL;
  status = CIMG_OK;

cleanup:
  png_destroy_read_struct(&png, &info, NULL);
  free(reader->raw);
  free(reader->rows);
  free(reader->pixels);
  free(reader->alpha);
  free(reader);
  return status;
}

// MARK: - JPEG decoding

/// Everything the JPEG decoder owns; `manager` must come first (libjpeg hands back its address).
typedef struct jpeg_reader {
  struct jpeg_error_mgr manager;
  jmp_buf jump;
  struct jpeg_decompress_struct info;
  cimg_status status;
  char message[CIMG_MESSAGE_CAPACITY];
  uint8_t *pixels;
  uint8_t *row;
} jpeg_reader;

static void jpeg_reader_error(j_common_ptr info) {
  jpeg_reader *reader = (jpeg_reader *)info->err;
  char text[JMSG_LENGTH_MAX];
  (*info->err->format_message)(info, text);
  switch (info->err->msg_code) {
    case JERR_OUT_OF_MEMORY:
      reader->status = CIMG_ERR_OUT_OF_MEMORY;
      break;
    case JERR_BAD_PRECISION:
    case JERR_CONVERSION_NOTIMPL:
      reader->status = CIMG_ERR_UNSUPPORTED;
      break;
    default:
      reader->status = CIMG_ERR_CORRUPT;
  }
  snprintf(reader->message, sizeof reader->message, "%s", text);
  longjmp(reader->jump, 1);
}

/// Warnings are ignored (Pillow ignores them) except running out of data, which Pillow reports
/// as "image file is truncated" where libjpeg would pad the image with gray.
static void jpeg_reader_message(j_common_ptr info, int level) {
  jpeg_reader *reader = (jpeg_reader *)info->err;
  if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) {
    reader->status = CIMG_ERR_TRUNCATED;
    snprintf(reader->message, sizeof reader->message, "the data ends before the image does");
    longjmp(reader->jump, 1);
  }
}

static void jpeg_quiet_output(j_common_ptr info) { (void)info; }

/// Pillow's cmyk2rgb: channel = clip(nk - round(value * nk / 255)), nk = 255 - k, with its
/// integer MULDIV255.
static inline uint8_t cmyk_channel(unsigned value, unsigned nk) {
  unsigned t = value * nk + 128;
  int v = (int)nk - (int)(((t >> 8) + t) >> 8);
  return v < 0 ? 0 : (uint8_t)v;
}

static cimg_status decode_jpeg(
  const uint8_t *data, size_t size, int32_t max_side, int64_t max_pixels, cimg_image *out, cimg_error *error) {
  jpeg_reader *reader = calloc(1, sizeof *reader);
  if (reader == NULL) return fail(error, CIMG_ERR_OUT_OF_MEMORY, "out of memory");
  reader->info.err = jpeg_std_error(&reader->manager);
  reader->manager.error_exit = jpeg_reader_error;
  reader->manager.emit_message = jpeg_reader_message;
  reader->manager.output_message = jpeg_quiet_output;

  cimg_status status = CIMG_OK;
  if (setjmp(reader->jump) != 0) {
    status = fail(error, reader->status != CIMG_OK ? reader->status : CIMG_ERR_CORRUPT, "%s", reader->message);
    goto cleanup;
  }
  jpeg_create_decompress(&reader->info);
  jpeg_mem_src(&reader->info, data, (unsigned long)size);
  (void)jpeg_read_header(&reader->info, TRUE);

  JDIMENSION width = reader->info.image_width, height = reader->info.image_height;
  if (width == 0 || height == 0 || width > (JDIMENSION)max_side || height > (JDIMENSION)max_side ||
      (int64_t)width * (int64_t)height > max_pixels) {
    status = fail(error, CIMG_ERR_TOO_LARGE, "image is %u×%u pixels; each side must be 1...%d and the area at most %lld",
                  (unsigned)width, (unsigned)height, (int)max_side, (long long)max_pixels);
    out->width = (int32_t)width;
    out->height = (int32_t)height;
    goto cleanup;
  }
  switch (reader->info.num_components) {
    case 1: reader->info.out_color_space = JCS_GRAYSCALE; break;
    case 3: reader->info.out_color_space = JCS_RGB; break;
    case 4: reader->info.out_color_space = JCS_CMYK; break;
    default:
      status = fail(error, CIMG_ERR_UNSUPPORTED, "JPEG with %d components", reader->info.num_components);
      goto cleanup;
  }
  (void)jpeg_start_decompress(&reader->info);
  int components = reader->info.output_components;
  if (reader->info.output_width != width || reader->info.output_height != height ||
      (components != 1 && components != 3 && components != 4)) {
    status = fail(error, CIMG_ERR_UNSUPPORTED, "unexpected JPEG output layout (%d components)", components);
    goto cleanup;
  }
  reader->pixels = malloc((size_t)width * height * 3);
  reader->row = malloc((size_t)width * components);
  if (reader->pixels == NULL || reader->row == NULL) {
    status = fail(error, CIMG_ERR_OUT_OF_MEMORY, "out of memory for a %u×%u image", (unsigned)width, (unsigned)height);
    goto cleanup;
  }
  while (reader->info.output_scanline < height) {
    JDIMENSION y = reader->info.output_scanline;
    JSAMPROW row = reader->row;
    if (jpeg_read_scanlines(&reader->info, &row, 1) != 1) {
      status = fail(error, CIMG_ERR_TRUNCATED, "the data ends before the image does");
      goto cleanup;
    }
    uint8_t *target = reader->pixels + (size_t)y * width * 3;
    const uint8_t *in = reader->row;
    if (components == 3) {
      memcpy(target, in, (size_t)width * 3);
    } else if (components == 1) {
      for (JDIMENSION x = 0; x < width; x++) target[3 * x] = target[3 * x + 1] = target[3 * x + 2] = in[x];
    } else {
      // Pillow reads 4-component JPEGs as "CMYK;I" (Adobe polarity: stored inverted).
      for (JDIMENSION x = 0; x < width; x++) {
        unsigned nk = in[4 * x + 3];  // 255 - (255 - stored k)
        target[3 * x] = cmyk_channel(255u - in[4 * x], nk);
        target[3 * x + 1] = cmyk_channel(255u - in[4 * x + 1], nk);
        target[3 * x + 2] = cmyk_channel(255u - in[4 * x + 2], nk);
      }
    }
  }
  // Read on to the EOI marker: Pillow reports a file without it as truncated, and so do we.
  (void)jpeg_finish_decompress(&reader->info);
  out->width = (int32_t)width;
  out->height = (int32_t)height;
  out->pixels = reader->pixels;
  out->format = CIMG_FORMAT_JPEG;
  reader->pixels = NULL;
  status = CIMG_OK;

cleanup:
  jpeg_destroy_decompress(&reader->info);
  free(reader->pixels);
  free(reader->row);
  free(reader);
  return status;
}

// MARK: - Entry points

cimg_status cimg_decode(
  const uint8_t *data, size_t size, int32_t max_side, int64_t max_pixels, int32_t flags, cimg_image *out,
  cimg_error *error) {
  clear_error(error);
  if (out == NULL) return fail(error, CIMG_ERR_ARGUMENT, "no output image");
  memset(out, 0, sizeof *out);
  if (data == NULL && size > 0) return fail(error, CIMG_ERR_ARGUMENT, "no data");
  if (max_side < 1) return fail(error, CIMG_ERR_ARGUMENT, "max_side must be positive");
  if (max_pixels < 1) return fail(error, CIMG_ERR_ARGUMENT, "max_pixels must be positive");
  if (size == 0) return fail(error, CIMG_ERR_NOT_AN_IMAGE, "the data is empty");

  size_t png_prefix = size < sizeof png_signature ? size : sizeof png_signature;
  if (memcmp(data, png_signature, png_prefix) == 0) {
    if (size < sizeof png_signature) {
      if (size >= 4) return fail(error, CIMG_ERR_TRUNCATED, "only %zu bytes of a PNG signature", size);
      return fail(error, CIMG_ERR_NOT_AN_IMAGE, "only %zu bytes", size);
    }
    return decode_png(data, size, max_side, max_pixels, flags, out, error);
  }
  if (size >= 2 && data[0] == 0xFF && data[1] == 0xD8) {
    if (size < 3 || data[2] != 0xFF) {
      if (size < 3) return fail(error, CIMG_ERR_TRUNCATED, "only a JPEG start marker");
      return fail(error, CIMG_ERR_NOT_AN_IMAGE, "starts with FF D8 %02X", data[2]);
    }
    return decode_jpeg(data, size, max_side, max_pixels, out, error);
  }
  return fail(error, CIMG_ERR_NOT_AN_IMAGE, "starts with %02X %02X %02X %02X", data[0],
              size > 1 ? data[1] : 0, size > 2 ? data[2] : 0, size > 3 ? data[3] : 0);
}

cimg_status cimg_decode_file(
  const char *path, int32_t max_side, int64_t max_pixels, int32_t flags, cimg_image *out, cimg_error *error) {
  clear_error(error);
  if (out == NULL || path == NULL) return fail(error, CIMG_ERR_ARGUMENT, "no path or output image");
  memset(out, 0, sizeof *out);
  char reason[128];
  int descriptor = open(path, O_RDONLY | O_CLOEXEC);
  if (descriptor < 0) {
    describe_errno(errno, reason, sizeof reason);
    return fail(error, CIMG_ERR_IO, "%s", reason);
  }
  uint8_t *buffer = NULL;
  size_t size = 0, capacity = 0;
  struct stat info;
  if (fstat(descriptor, &info) == 0 && S_ISDIR(info.st_mode)) {
    close(descriptor);
    return fail(error, CIMG_ERR_IO, "it is a directory");
  }
  if (fstat(descriptor, &info) == 0 && S_ISREG(info.st_mode) && info.st_size > 0) capacity = (size_t)info.st_size + 1;
  if (capacity == 0) capacity = 65536;
  buffer = malloc(capacity);
  if (buffer == NULL) {
    close(descriptor);
    return fail(error, CIMG_ERR_OUT_OF_MEMORY, "out of memory reading the file");
  }
  for (;;) {
    if (size == capacity) {
      size_t grown = capacity * 2;
      uint8_t *larger = grown > capacity ? realloc(buffer, grown) : NULL;
      if (larger == NULL) {
        free(buffer);
        close(descriptor);
        return fail(error, CIMG_ERR_OUT_OF_MEMORY, "out of memory reading the file");
      }
      buffer = larger;
      capacity = grown;
    }
    ssize_t count = read(descriptor, buffer + size, capacity - size);
    if (count < 0) {
      if (errno == EINTR) continue;
      describe_errno(errno, reason, sizeof reason);
      free(buffer);
      close(descriptor);
      return fail(error, CIMG_ERR_IO, "read failed: %s", reason);
    }
    if (count == 0) break;
    size += (size_t)count;
  }
  close(descriptor);
  cimg_status status = cimg_decode(buffer, size, max_side, max_pixels, flags, out, error);
  free(buffer);
  return status;
}

// MARK: - PNG encoding

/// The encoder's state: the growing output buffer and the text records handed to libpng.
typedef struct png_writer {
  uint8_t *data;
  size_t size;
  size_t capacity;
  int out_of_memory;
  char message[CIMG_MESSAGE_CAPACITY];
  png_text *texts;
  size_t text_count;
} png_writer;

static void png_writer_write(png_structp png, png_bytep bytes, size_t length) {
  png_writer *writer = png_get_io_ptr(png);
  if (length > writer->capacity - writer->size) {
    size_t needed = writer->size + length;
    size_t grown = writer->capacity > 0 ? writer->capacity : 4096;
    while (grown < needed && grown <= SIZE_MAX / 2) grown *= 2;
    if (grown < needed) grown = needed;
    uint8_t *larger = realloc(writer->data, grown);
    if (larger == NULL) {
      writer->out_of_memory = 1;
      png_error(png, "out of memory for the encoded PNG");
    }
    writer->data = larger;
    writer->capacity = grown;
  }
  memcpy(writer->data + writer->size, bytes, length);
  writer->size += length;
}

static void png_writer_flush(png_structp png) { (void)png; }

static void png_writer_error(png_structp png, png_const_charp message) {
  png_writer *writer = png_get_error_ptr(png);
  snprintf(writer->message, sizeof writer->message, "%s", message);
  png_longjmp(png, 1);
}

static void png_writer_free(png_writer *writer) {
  if (writer->texts != NULL) {
    for (size_t i = 0; i < writer->text_count; i++) free(writer->texts[i].text);
    free(writer->texts);
  }
  free(writer->data);
  free(writer);
}

cimg_status cimg_encode_png(
  const uint8_t *pixels, int32_t width, int32_t height, const cimg_text_input *texts, size_t text_count,
  uint8_t **out_data, size_t *out_size, cimg_error *error) {
  clear_error(error);
  if (out_data == NULL || out_size == NULL) return fail(error, CIMG_ERR_ARGUMENT, "no output buffer");
  *out_data = NULL;
  *out_size = 0;
  if (pixels == NULL || width < 1 || height < 1 || width > 0x7fffffff / 3)
    return fail(error, CIMG_ERR_ARGUMENT, "invalid image %d×%d", (int)width, (int)height);
  if (text_count > 0 && texts == NULL) return fail(error, CIMG_ERR_ARGUMENT, "no text records");
  for (size_t i = 0; i < text_count; i++) {
    if (!cimg_png_keyword_is_valid(texts[i].key))
      return fail(error, CIMG_ERR_ARGUMENT, "invalid PNG text keyword \"%.80s\"", texts[i].key ? texts[i].key : "");
    if (texts[i].text == NULL && texts[i].text_length > 0) return fail(error, CIMG_ERR_ARGUMENT, "no text bytes");
    if (texts[i].text_length > 0 && memchr(texts[i].text, 0, texts[i].text_length) != NULL)
      return fail(error, CIMG_ERR_ARGUMENT, "text for \"%.80s\" contains a NUL byte", texts[i].key);
  }

  png_writer *writer = calloc(1, sizeof *writer);
  if (writer == NULL) return fail(error, CIMG_ERR_OUT_OF_MEMORY, "out of memory");
  if (text_count > 0) {
    writer->texts = calloc(text_count, sizeof *writer->texts);
    if (writer->texts == NULL) {
      png_writer_free(writer);
      return fail(error, CIMG_ERR_OUT_OF_MEMORY, "out of memory");
    }
    writer->text_count = text_count;
    for (size_t i = 0; i < text_count; i++) {
      // libpng measures text with strlen, so hand it NUL-terminated copies.
      writer->texts[i].text = copy_bytes((const char *)texts[i].text, texts[i].text_length);
      if (writer->texts[i].text == NULL) {
        png_writer_free(writer);
        return fail(error, CIMG_ERR_OUT_OF_MEMORY, "out of memory");
      }
      writer->texts[i].key = (png_charp)texts[i].key;  // libpng only reads it
      writer->texts[i].compression = texts[i].is_utf8 ? PNG_ITXT_COMPRESSION_NONE : PNG_TEXT_COMPRESSION_NONE;
      writer->texts[i].lang = NULL;
      writer->texts[i].lang_key = NULL;
    }
  }

  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, writer, png_writer_error, png_quiet_warning);
  if (png == NULL) {
    png_writer_free(writer);
    return fail(error, CIMG_ERR_OUT_OF_MEMORY, "cannot create a libpng writer");
  }
  png_infop info = png_create_info_struct(png);
  if (info == NULL) {
    png_destroy_write_struct(&png, NULL);
    png_writer_free(writer);
    return fail(error, CIMG_ERR_OUT_OF_MEMORY, "cannot create a libpng writer");
  }
  if (setjmp(png_jmpbuf(png)) != 0) {
    cimg_status status = fail(error, writer->out_of_memory ? CIMG_ERR_OUT_OF_MEMORY : CIMG_ERR_CORRUPT,
                              "PNG encoding failed: %s", writer->message);
    png_destroy_write_struct(&png, &info);
    png_writer_free(writer);
    return status;
  }
  png_set_write_fn(png, writer, png_writer_write, png_writer_flush);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(png, CIMG_PNG_COMPRESSION_LEVEL);
  png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_ALL_FILTERS);
  if (writer->text_count > 0) png_set_text(png, info, writer->texts, (int)writer->text_count);
  png_write_info(png, info);
  size_t stride = (size_t)width * 3;
  for (int32_t y = 0; y < height; y++) png_write_row(png, pixels + (size_t)y * stride);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);

  *out_data = writer->data;
  *out_size = writer->size;
  writer->data = NULL;
  png_writer_free(writer);
  return CIMG_OK;
}

// MARK: - Atomic file writes

cimg_status cimg_write_file_atomic(const char *path, const uint8_t *data, size_t size, cimg_error *error) {
  clear_error(error);
  if (path == NULL || (data == NULL && size > 0)) return fail(error, CIMG_ERR_ARGUMENT, "no path or data");
  static const char suffix[] = ".tmp-XXXXXX";
  size_t path_length = strlen(path);
  char *temporary = malloc(path_length + sizeof suffix);
  if (temporary == NULL) return fail(error, CIMG_ERR_OUT_OF_MEMORY, "out of memory");
  memcpy(temporary, path, path_length);
  memcpy(temporary + path_length, suffix, sizeof suffix);

  char reason[128];
  int descriptor = mkstemp(temporary);
  if (descriptor < 0) {
    describe_errno(errno, reason, sizeof reason);
    free(temporary);
    return fail(error, CIMG_ERR_IO, "cannot create a temporary file beside it: %s", reason);
  }
  const char *step = "write";  // the failing step, for the message
  size_t written = 0;
  while (written < size) {
    ssize_t count = write(descriptor, data + written, size - written);
    if (count < 0) {
      if (errno == EINTR) continue;
      goto failed;
    }
    written += (size_t)count;
  }
  step = "chmod";
  if (fchmod(descriptor, 0644) != 0) goto failed;
  step = "fsync";
  if (fsync(descriptor) != 0 && errno != EINVAL && errno != EROFS) goto failed;
  step = "close";
  int closed = close(descriptor);
  descriptor = -1;
  if (closed != 0) goto failed;
  step = "rename";
  if (rename(temporary, path) != 0) goto failed;
  // Flush the directory too, so the rename itself survives a crash (best effort: some file
  // systems refuse to fsync a directory).
  char *slash = strrchr(temporary, '/');
  if (slash == temporary) {
    slash[1] = '\0';
  } else if (slash != NULL) {
    *slash = '\0';
  } else {
    temporary[0] = '.';
    temporary[1] = '\0';
  }
  int directory = open(temporary, O_RDONLY | O_DIRECTORY);
  if (directory >= 0) {
    (void)fsync(directory);
    close(directory);
  }
  free(temporary);
  return CIMG_OK;

failed:
  describe_errno(errno, reason, sizeof reason);
  if (descriptor >= 0) close(descriptor);
  unlink(temporary);
  free(temporary);
  return fail(error, CIMG_ERR_IO, "%s failed: %s", step, reason);
}

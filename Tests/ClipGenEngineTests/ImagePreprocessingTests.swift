// Resizing, CLIP preprocessing and VQGAN conversions against Pillow + torchvision fixtures.
import Foundation
import Testing

@testable import ClipGenEngine

@Suite struct ImageResamplingTests {
  /// Pillow's `Image.resize` for every filter, down, up, one-axis and mixed: identical bytes.
  @Test func resizeMatchesPillowExactly() throws {
    let manifest = try ImageFixtures.manifest()
    #expect(manifest.resize.count >= 15)
    for entry in manifest.resize {
      let input = try RGBImage.load(contentsOf: ImageFixtures.url(entry.input))
      let filter = try #require(ImageFixtures.filter(named: entry.filter))
      let expected = try ImageFixtures.pixels(entry.expected, width: entry.width, height: entry.height)
      let resized = input.resized(width: entry.width, height: entry.height, filter: filter)
      let difference = maxSampleDifference(resized, expected)
      #expect(
        difference == 0, "\(entry.input) → \(entry.width)×\(entry.height) \(entry.filter): max abs diff \(difference)")
    }
  }

  /// The two pass orders are each the composition of one-axis resizes, and they differ.
  @Test func passOrders() throws {
    let input = try RGBImage.load(contentsOf: ImageFixtures.url("resize_input_50x37.png"))
    let pillow13 = input.resized(width: 45, height: 10)
    let legacy = input.resized(width: 45, height: 10, passOrder: .horizontalFirst)
    #expect(pillow13 == input.resized(width: 50, height: 10).resized(width: 45, height: 10))
    #expect(legacy == input.resized(width: 45, height: 37).resized(width: 45, height: 10))
    #expect(maxSampleDifference(pillow13, legacy) > 0)
    // Where Pillow 13 keeps horizontal first, both orders agree.
    #expect(input.resized(width: 40, height: 17) == input.resized(width: 40, height: 17, passOrder: .horizontalFirst))
  }

  @Test func upscalingMatchesPillow() throws {
    for entry in try ImageFixtures.manifest().upscale {
      let input = try RGBImage.load(contentsOf: ImageFixtures.url(entry.input))
      let method: RGBImage.UpscaleMethod = entry.method == "nearest" ? .nearest : .bicubic
      let result = input.upscaled(by: entry.factor, method: method)
      let expected = try ImageFixtures.pixels(
        entry.expected, width: input.width * entry.factor, height: input.height * entry.factor)
      #expect(maxSampleDifference(result, expected) == 0, "\(entry.method) ×\(entry.factor)")
    }
  }

  @Test func torchvisionSizeRules() {
    #expect(RGBImage.shorterSideSize(width: 640, height: 480, size: 224) == (298, 224))
    #expect(RGBImage.shorterSideSize(width: 480, height: 640, size: 224) == (224, 298))
    #expect(RGBImage.shorterSideSize(width: 23, height: 41, size: 32) == (32, 57))
    #expect(RGBImage.shorterSideSize(width: 300, height: 300, size: 224) == (224, 224))
    // Centre-crop offsets round half to even: excess 1 → 0, 3 → 2 (1.5 → 2), 5 → 2 (2.5 → 2).
    var random = TestRandom(seed: 5)
    let image = random.image(width: 37, height: 35)
    #expect(image.centerCropped(width: 36, height: 35) == image.cropped(x: 0, y: 0, width: 36, height: 35))
    #expect(image.centerCropped(width: 34, height: 35) == image.cropped(x: 2, y: 0, width: 34, height: 35))
    #expect(image.centerCropped(width: 32, height: 30) == image.cropped(x: 2, y: 2, width: 32, height: 30))
    // Larger than the image: black padding, the odd pixel right/bottom, as torchvision pads.
    let padded = image.centerCropped(width: 40, height: 36)
    #expect(padded.width == 40 && padded.height == 36)
    #expect(padded.pixel(x: 0, y: 0) == (0, 0, 0) && padded.pixel(x: 39, y: 35) == (0, 0, 0))
    #expect(padded.pixel(x: 1, y: 0) == image.pixel(x: 0, y: 0))
    #expect(padded.cropped(x: 1, y: 0, width: 37, height: 35) == image)
  }
}

@Suite struct CLIPImagePreprocessorTests {
  /// OpenAI CLIP's transform vs torchvision on PIL images: identical uint8 crop, and the tensor
  /// within 1e-5 (measured: 0, i.e. bit-identical float32).
  @Test func matchesTorchvisionTransform() throws {
    let manifest = try ImageFixtures.manifest()
    for entry in manifest.clip {
      let input = try RGBImage.load(contentsOf: ImageFixtures.url(entry.input))
      let preprocessor = CLIPImagePreprocessor(size: entry.size)
      let crop = preprocessor.cropped(input)
      let expectedCrop = try RGBImage.load(contentsOf: ImageFixtures.url(entry.expectedCrop))
      #expect(maxSampleDifference(crop, expectedCrop) == 0, "\(entry.input) crop")
      let tensor = preprocessor(input)
      #expect(tensor.shape == [3, entry.size, entry.size])
      if let expectedTensor = entry.expectedTensor {
        let difference = maxFloatDifference(tensor.scalars, try ImageFixtures.floats(expectedTensor))
        #expect(difference <= 1e-5, "\(entry.input): max abs diff \(difference)")
        #expect(difference == 0, "\(entry.input): not bit-identical (\(difference))")
      }
    }
  }

  @Test func batchesStackImages() throws {
    var random = TestRandom(seed: 6)
    let images = [random.image(width: 40, height: 30), random.image(width: 20, height: 50)]
    let preprocessor = CLIPImagePreprocessor(size: 16)
    let batch = preprocessor.batch(images)
    #expect(batch.shape == [2, 3, 16, 16])
    #expect(Array(batch.scalars[768...]) == preprocessor.preprocess(images[1]).scalars)
  }
}

@Suite struct VQGANImageConversionTests {
  @Test func inputTransformsMatchReferences() throws {
    for entry in try ImageFixtures.manifest().vqganInput {
      let input = try RGBImage.load(contentsOf: ImageFixtures.url(entry.input))
      let hfai = VQGANImageTransform.hfai(resolution: entry.size)(input)
      #expect(hfai.shape == [3, entry.size, entry.size])
      #expect(maxFloatDifference(hfai.scalars, try ImageFixtures.floats(entry.hfai)) == 0, "\(entry.input) hfai")
      let taming = VQGANImageTransform.taming(resolution: entry.size)(input)
      #expect(maxFloatDifference(taming.scalars, try ImageFixtures.floats(entry.taming)) == 0, "\(entry.input) taming")
      #expect(taming.scalars.allSatisfy { $0 >= -1 && $0 <= 1 })
    }
  }

  @Test func outputConversionsMatchReferences() throws {
    for entry in try ImageFixtures.manifest().vqganOutput {
      let tensor = Tensor(shape: entry.shape, scalars: try ImageFixtures.floats(entry.input))
      let (height, width) = (entry.shape[1], entry.shape[2])
      let taming = try RGBImage(tensor: tensor)
      #expect(taming == (try ImageFixtures.pixels(entry.taming, width: width, height: height)))
      let hfai = try VQGANImageTransform.hfai(resolution: height).image(from: tensor, quantization: .roundHalfUp)
      #expect(hfai == (try ImageFixtures.pixels(entry.hfai, width: width, height: height)))
      // A leading batch dimension of 1 is accepted; the non-throwing form agrees.
      #expect(try RGBImage(tensor: tensor.reshaped([1] + entry.shape)) == taming)
      #expect(RGBImage(vqganOutput: tensor) == taming)
    }
  }

  @Test func roundTripAndBadShapes() throws {
    var random = TestRandom(seed: 8)
    let image = random.image(width: 8, height: 6)
    // taming: v/127.5 - 1 then truncating back loses nothing for exact grid values? It can lose one
    // step (float rounding below the integer); round-half-up recovers every byte.
    #expect(try RGBImage(tensor: image.tensor(), quantization: .roundHalfUp) == image)
    #expect(
      try RGBImage(
        tensor: image.tensor(normalization: .clip), normalization: .clip, quantization: .roundHalfUp) == image)
    #expect(throws: ImageError.self) { try RGBImage(tensor: Tensor(zeros: [4, 2, 2])) }
    #expect(throws: ImageError.self) { try RGBImage(tensor: Tensor(zeros: [2, 3, 2, 2])) }
    #expect(throws: ImageError.self) { try RGBImage(tensor: Tensor(zeros: [3, 0, 2])) }
    let nan = Tensor(shape: [3, 1, 1], scalars: [.nan, .infinity, -.infinity])
    #expect(try RGBImage(tensor: nan).pixels == [0, 255, 0])
  }
}

"""The streaming stages (vad, windows, chunked, detector, events) and the KeywordPipeline that joins
them: audio in, events out, synchronously; replay runs recorded window scores through the Detector."""

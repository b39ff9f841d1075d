"""Wire formats <-> arrays, one module per format; every tensor is validated before a backend sees it.

* :mod:`~gateway.codecs.json_body` — JSON at the edge: depth, NaN/Infinity, booleans, counts;
* :mod:`~gateway.codecs.tensors` — the model's input (float32 images in the contract's range);
* :mod:`~gateway.codecs.v1_json` — TF Serving / KServe V1 JSON;
* :mod:`~gateway.codecs.v2_json` — Open Inference Protocol V2 JSON and its binary tensor extension;
* :mod:`~gateway.codecs.tf_tensor` — TF ``TensorProto`` (TF Serving's gRPC API);
* :mod:`~gateway.codecs.image` — the friendly image API (uploads, PNG/JPEG, base64).
"""

/**
 * JSON Schemas (draft-07) of the Open Inference Protocol V2 HTTP/REST payloads, written from
 * the protocol's text (KServe "Open Inference Protocol", inference_rest.md: $metadata_server_response,
 * $live/ready responses, $metadata_model_response, $metadata_tensor, $inference_request,
 * $request_input/$request_output, $inference_response, $response_output, the error objects and
 * $parameters) plus the two extensions this server reports: binary tensor data (an input or
 * output carries `binary_data_size` instead of `data`) and classification (BYTES
 * "<value>:<index>[:<label>]" strings). The conformance tests check every response against
 * these; the server does not validate against them at run time (its parser gives better errors).
 */

/** The spec's tensor data types ("Tensor Data Types" table). */
export const DATATYPES = [
  "BOOL",
  "UINT8",
  "UINT16",
  "UINT32",
  "UINT64",
  "INT8",
  "INT16",
  "INT32",
  "INT64",
  "FP16",
  "FP32",
  "FP64",
  "BYTES",
] as const;
export type Datatype = typeof DATATYPES[number];

/** $parameters: an object of zero or more key/value pairs, each a string, number or boolean. */
const parameters = {
  type: "object",
  additionalProperties: { type: ["string", "number", "boolean"] },
};

/** $tensor_data: row-major elements, flat or nested in the tensor's own dimensions. */
const tensorData = {
  type: "array",
  items: { anyOf: [{ type: ["number", "string", "boolean"] }, { $ref: "#/definitions/data" }] },
};

const shape = { type: "array", items: { type: "integer", minimum: 0 } };

const definitions = { parameters, data: tensorData };

/** $metadata_server_error_response, $metadata_model_error_response, $inference_error_response. */
export const errorSchema = {
  $id: "v2/error",
  type: "object",
  required: ["error"],
  properties: { error: { type: "string", minLength: 1 } },
  additionalProperties: false,
};

export const serverMetadataSchema = {
  $id: "v2/server-metadata",
  type: "object",
  required: ["name", "version", "extensions"],
  properties: {
    name: { type: "string" },
    version: { type: "string" },
    extensions: { type: "array", items: { type: "string" } },
  },
};

export const serverLiveSchema = {
  $id: "v2/server-live",
  type: "object",
  required: ["live"],
  properties: { live: { type: "boolean" } },
};

export const serverReadySchema = {
  $id: "v2/server-ready",
  type: "object",
  required: ["ready"],
  properties: { ready: { type: "boolean" } },
};

export const modelReadySchema = {
  $id: "v2/model-ready",
  type: "object",
  required: ["name", "ready"],
  properties: { name: { type: "string" }, ready: { type: "boolean" } },
};

/** $metadata_tensor: variable-size dimensions are -1. */
const metadataTensor = {
  type: "object",
  required: ["name", "datatype", "shape"],
  properties: {
    name: { type: "string" },
    datatype: { enum: DATATYPES },
    shape: { type: "array", items: { type: "integer", minimum: -1 } },
  },
};

export const modelMetadataSchema = {
  $id: "v2/model-metadata",
  type: "object",
  required: ["name", "platform", "inputs", "outputs"],
  properties: {
    name: { type: "string" },
    versions: { type: "array", items: { type: "string" } },
    platform: { type: "string" },
    inputs: { type: "array", items: metadataTensor },
    outputs: { type: "array", items: metadataTensor },
  },
};

/** A tensor with its data: what $request_input and $response_output share. */
const tensorWithData = {
  type: "object",
  required: ["name", "shape", "datatype"],
  properties: {
    name: { type: "string" },
    shape,
    datatype: { enum: DATATYPES },
    parameters: { $ref: "#/definitions/parameters" },
    data: { $ref: "#/definitions/data" },
  },
};

/** $request_input: `data`, or (binary extension) `parameters.binary_data_size` and no data. */
const requestInput = {
  ...tensorWithData,
  anyOf: [
    { required: ["data"] },
    {
      required: ["parameters"],
      properties: { parameters: { required: ["binary_data_size"] } },
    },
  ],
};

const requestOutput = {
  type: "object",
  required: ["name"],
  properties: { name: { type: "string" }, parameters: { $ref: "#/definitions/parameters" } },
};

export const inferenceRequestSchema = {
  $id: "v2/inference-request",
  definitions,
  type: "object",
  required: ["inputs"],
  properties: {
    id: { type: "string" },
    parameters: { $ref: "#/definitions/parameters" },
    inputs: { type: "array", items: requestInput },
    outputs: { type: "array", items: requestOutput },
  },
};

/** $response_output: `data`, or (binary extension) `parameters.binary_data_size` and no data. */
const responseOutput = {
  ...tensorWithData,
  oneOf: [
    {
      required: ["data"],
      not: {
        required: ["parameters"],
        properties: { parameters: { required: ["binary_data_size"] } },
      },
    },
    {
      required: ["parameters"],
      properties: { parameters: { required: ["binary_data_size"] } },
      not: { required: ["data"] },
    },
  ],
};

export const inferenceResponseSchema = {
  $id: "v2/inference-response",
  definitions,
  type: "object",
  required: ["model_name", "outputs"],
  properties: {
    model_name: { type: "string" },
    model_version: { type: "string" },
    id: { type: "string" },
    parameters: { $ref: "#/definitions/parameters" },
    outputs: { type: "array", items: responseOutput },
  },
};

/** The classification extension's element: "<value>:<index>[:<label>]". */
export const CLASSIFICATION_ELEMENT = /^-?[0-9.eE+-]+:[0-9]+(:.*)?$/;

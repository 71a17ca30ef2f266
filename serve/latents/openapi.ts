/**
 * OpenAPI entries of the latent-space endpoints (translation, gallery, similarity search),
 * merged into serve/openapi.ts's document so /docs describes them with the rest.
 */
type Json = Record<string, unknown>;

const err = (description: string): Json => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
});
const ok = (description: string): Json => ({ description, content: { "application/json": {} } });

export function latentPaths(): Json {
  return {
    "/v1/latent/translate": {
      post: {
        summary: "Translate stored latents into the active latent space",
        description:
          'Body {"from": "<latent space id>", "latents": [[numbers], ...]}. Every latent the service ' +
          "returns names its space (latent.space, latentSpace, X-Latent-Space). The maps come from " +
          "the bundles (fitted at publish time on held-out images) and are chained through versions.",
        responses: {
          "200": ok("latentSpace, from, path (each map with its R² and 10-NN share), latents"),
          "400": err("Body is not JSON or lacks from/latents."),
          "404": err("No map leads from that space to the active one (the message names the gap)."),
          "422": err(
            "A latent has the wrong length, or a map's fit is below --translate-min-neighbours.",
          ),
          "503": err("No model is loaded."),
        },
      },
    },
    "/v1/similar": {
      post: {
        summary: "Nearest gallery items to an image or a latent",
        description:
          'An image (any /v1/classify input, one image) or JSON {"latent": [L numbers], "space"?: ' +
          '"<id>", "k"?: 10}. ?k= also sets k. Results carry the Euclidean distance between mu ' +
          "vectors and whether the item's latent is a translation awaiting re-embedding.",
        parameters: [{
          name: "k",
          in: "query",
          required: false,
          schema: { type: "integer", minimum: 1, maximum: 100 },
        }],
        responses: {
          "200": ok(
            "model, latentSpace, results [{id, distance, metadata, translated}], gallery status",
          ),
          "404": err("The latent's space cannot be translated to the active one."),
          "503": err("No gallery (--gallery) or it cannot be opened, or no model is loaded."),
        },
      },
    },
    "/v1/gallery": {
      get: {
        summary: "Gallery status",
        responses: {
          "200": ok("items, latentSpace, pending, translated, reembedding"),
          "503": err("No gallery."),
        },
      },
    },
    "/v1/gallery/items/{id}/image": {
      get: {
        summary: "A gallery item's 28x28 image as PNG",
        responses: {
          "200": { description: "PNG", content: { "image/png": {} } },
          "404": err("No such item."),
        },
      },
    },
    "/v1/admin/gallery/items": {
      post: {
        summary: "Add or replace gallery items (admin token needed)",
        description:
          'Body {"items": [{"id", "image": "<base64 PNG/JPEG>" | "pixels": [784 numbers], ' +
          '"metadata"?: any}]}; each image is preprocessed like /v1/classify and embedded now.',
        responses: {
          "201": ok("added ids and the gallery status"),
          "400": err("Malformed items."),
          "401": err("No bearer token."),
          "403": err("Wrong token."),
          "503": err("No gallery."),
        },
      },
    },
    "/v1/admin/gallery/items/{id}": {
      delete: {
        summary: "Remove a gallery item (admin token needed)",
        responses: {
          "200": ok("removed id"),
          "404": err("No such item."),
          "503": err("No gallery."),
        },
      },
    },
  };
}

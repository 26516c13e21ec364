"""The Playground for an image model: one image (uploaded, taken with the camera, or from the run's test split) with
every class's probability and an explanation overlaid on it, or a zip of images as a table of predictions.

Layout only: decoding, predictions, explanations and the blended heat map come from :mod:`bmcore`; class and file
names are data, shown as text.
"""

import hashlib
from pathlib import PurePosixPath

import streamlit as st

from bmcore import batch_files
from bmcore import explain_images as xi
from bmcore.display import csv_frame, md
from bmcore.errors import BmcoreError
from bmcore.images import IMAGE_SUFFIXES
from bmcore.inference import predict_images
from bmcore.modalities.image import decode
from bmcore.report import playground as view
from bmcore.report import serving

UPLOAD, EXAMPLE, CAMERA = "Upload an image", "An image from the test split", "Take a photo"
IMAGE_INTRO = ("A **prediction** is a probability for each class; the label is the most probable one. The **explanation** is a "
         "heat map over the image of what weighed most in the prediction: **Grad-CAM** for CNNs (ResNet, "
         "EfficientNet, ConvNeXt), the region of the last feature map that raises the class's score; **attention "
         "rollout** for patch models (ViT), how much the classifier's [CLS] token draws on each patch through all "
         "layers; or, for any model, **Integrated Gradients**, how much each pixel moved the class's probability away "
         "from a black image.")
IMAGE_TYPES = sorted(s.lstrip(".") for s in IMAGE_SUFFIXES)


@st.cache_data(show_spinner="Explaining the prediction...", max_entries=16)
def explained(key: tuple[str, float], precision: str, data: bytes, target: str, method: str, _load):
    """The explanation and its overlay PNG, cached per (model, image, class, method): moving back is instant."""
    ex = xi.explain_image(_load(key, precision), data, target, method=method)
    return ex, xi.overlay_png(data, ex.heatmap)


def show_image_playground(info, clf, precision: str, load, draw_probabilities, fail) -> None:
    """The image Playground for the model ``clf`` (loaded by ``load(key, precision)``, cached by the page)."""
    names = clf.label_names
    one, many = st.tabs(["One image", "Batch (zip of images)"])
    with many:
        show_batch(info, clf, names)
    with one:
        examples = view.playground_image_examples(info.dataset) if info.dataset else []
        sources = [UPLOAD, *([EXAMPLE] if examples else []), CAMERA]
        source = st.radio("Image", sources, horizontal=True, key="playground_image_source")
        data, name, gold = None, "image.png", None
        if source == UPLOAD:
            upload = st.file_uploader("An image file", type=IMAGE_TYPES, key="playground_image_file")
            if upload is not None:
                data, name = upload.getvalue(), upload.name
        elif source == EXAMPLE:
            pick = st.selectbox("Test image (true class first)", range(len(examples)), key="playground_image_example",
                                format_func=lambda i: md(f"{examples[i]['label']}: {PurePosixPath(examples[i]['path']).name}"))
            data, name, gold = examples[pick]["image"], PurePosixPath(examples[pick]["path"]).name or name, examples[pick]["label"]
        else:
            shot = st.camera_input("Take a photo", key="playground_image_camera")
            if shot is not None:
                data, name = shot.getvalue(), "photo.jpg"
        methods = xi.image_methods(clf.model.config)
        if st.session_state.get("playground_image_method") not in methods:  # another model: its own default
            st.session_state["playground_image_method"] = methods[0]
        method = st.selectbox("Explanation", methods, key="playground_image_method", format_func=xi.METHOD_TITLES.get,
                              help="Grad-CAM shows the region a CNN relies on; attention rollout where a ViT looks; "
                                   "Integrated Gradients, for any model, each pixel's share (noisy on photos).")
        st.caption("The same from the command line (`--explain` writes the heat map as a PNG beside the image), and "
                   "in Python with transformers:")
        st.code(view.image_predict_command(info.location, name, method=None if method == methods[0] else method),
                language="bash", wrap_lines=True)
        st.code(view.image_pipeline_snippet(info.location), language="python")
        with st.expander("Serve it over HTTP", icon=":material/api:"):
            st.markdown(serving.SERVE_NOTE)
            st.code(serving.serve_snippet(info.location, pictures=True), language="bash", wrap_lines=True)
        if data is None:
            st.info("Upload an image, or pick one from the test split.")
            return
        try:
            image = decode(data, name)
        except BmcoreError as exc:
            fail(exc)
        show_one(info, clf, precision, load, draw_probabilities, fail, data, image, gold, method)


def show_one(info, clf, precision, load, draw_probabilities, fail, data, image, gold, method) -> None:
    names = clf.label_names
    pred = clf.predict_proba([image])
    label, probs = pred.labels[0], dict(zip(names, pred.probs[0].tolist(), strict=True))
    calibrated = dict(zip(names, pred.calibrated_probs[0].tolist(), strict=True)) if pred.calibrated_probs is not None else None
    m = st.columns(4 if gold is not None else 3)
    m[0].metric("Prediction", md(label))
    m[1].metric("Probability", f"{probs[label]:.1%}")
    m[2].metric("Latency", f"{pred.seconds * 1000:.1f} ms", help="One forward pass on the cached model, resizing included.")
    if gold is not None:
        m[3].metric("True class", md(gold), "right" if gold == label else "wrong", delta_arrow="off",
                    delta_color="normal" if gold == label else "inverse", help="The image's class in its dataset.")
    left, right = st.columns([1, 1])
    with left:
        draw_probabilities(probs, calibrated, clf.meta)
    with right:
        # A class picked for one image is not carried over to the next: a new image explains its own prediction.
        shown = (info.cache_key, hashlib.sha256(bytes(data)).hexdigest())
        if st.session_state.get("playground_image_target_for") != shown or st.session_state.get(
                "playground_image_target") not in names:
            st.session_state["playground_image_target_for"] = shown
            st.session_state["playground_image_target"] = label
        target = st.selectbox("Explain the class", names, key="playground_image_target",
                              format_func=lambda c: f"{c} (predicted)" if c == label else c)
        try:
            ex, png = explained(info.cache_key, precision, bytes(data), target, method, load)
        except BmcoreError as exc:
            fail(exc)
        a, b = st.columns(2)
        a.image(xi.overlay_png(data, ex.heatmap, alpha=0.0), caption="What the model sees", width="stretch")
        b.image(png, caption=md(f"{ex.title}: {ex.target}"), width="stretch")
        st.caption(md(view.image_explanation_note(ex)) + f" Explained in {ex.seconds:.2f} s.")


def show_batch(info, clf, names) -> None:
    st.markdown("A `.zip` of images (any folders inside): one prediction per image. When the images sit in one folder "
                "per class, the folder column holds their class.")
    upload = st.file_uploader("A .zip of images", type=["zip"], key="playground_image_batch")
    if upload is None:
        return
    try:
        files = batch_files.read_image_batch(upload.name, upload.getvalue())  # total pixels checked from the headers
        # Decoded a batch at a time, each reduced on load; a bad file is named in the one-line refusal.
        records = predict_images(clf, [b for _, b in files], names=[p for p, _ in files])
    except BmcoreError as exc:
        st.error(md(exc))
        return
    table = view.image_predictions_frame([p for p, _ in files], records)
    known = table["folder"].isin(names)
    if known.any():
        right = (table["folder"] == table["label"])[known]
        st.metric("Accuracy on images in class folders", f"{right.mean():.3f}",
                  help=f"{int(known.sum()):,} images sit in a folder named after a class; the share predicted as it.")
    st.dataframe(table, hide_index=True, key="playground_image_batch_table", column_config={
        "confidence": st.column_config.ProgressColumn("confidence", format="%.3f", min_value=0, max_value=1)})
    st.download_button("Download as CSV", csv_frame(table).to_csv(index=False).encode("utf-8"), "predictions.csv",
                       "text/csv", key="playground_image_batch_download", icon=":material/download:")
    st.caption(md(f"{len(table):,} images · " + ", ".join(f"{k} {v:,}" for k, v in table["label"].value_counts().items())))

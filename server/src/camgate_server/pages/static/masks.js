"use strict";
// The owner draws privacy masks on a current picture of their own camera (the portal).
//
// "Take a current picture" is the owner's own look (POST /cameras/{id}/look): the raw still,
// audited as the owner's, never a police access. Shapes are drawn on it with the mouse or the
// keyboard (arrows move a pointer, Enter or Space puts a corner), shown blacked out as the
// police would see them, and saved as the camera's masks (PUT /cameras/{id}/masks), in
// normalised picture coordinates ((0, 0) top left, (1, 1) bottom right). The server burns them
// into every later picture, video and clip; the page's blacking out is only the preview.
// Loaded before common.js (deferred, in order): nothing here runs until initMasks().

const MASK_STEP = 0.02; // an arrow key moves the pointer 2 % of the picture
const MASK_BIG_STEP = 0.1; // with Shift, 10 %
const masking = {
  camera: null, picture: null, shapes: [], corners: [], pointer: [0.5, 0.5], saved: true,
};

function maskElement(id) {
  return document.getElementById(`mask-${id}`);
}

function percent(value) {
  return `${Math.round(value * 100)} %`;
}

function shapePath(ctx, corners, close) {
  ctx.beginPath();
  corners.forEach(([x, y], i) => {
    const at = [x * ctx.canvas.width, y * ctx.canvas.height];
    if (i === 0) ctx.moveTo(...at);
    else ctx.lineTo(...at);
  });
  if (close) ctx.closePath();
}

// The picture with every closed shape (blacked out in the preview, outlined otherwise), the
// shape being drawn and, while the picture has the keyboard, the pointer.
function drawMasks() {
  const canvas = maskElement("canvas");
  const { picture } = masking;
  if (!picture) return;
  canvas.width = picture.width;
  canvas.height = picture.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(picture, 0, 0);
  const preview = maskElement("preview").checked;
  ctx.lineWidth = 2;
  ctx.strokeStyle = "#ffbf47";
  for (const shape of masking.shapes) {
    shapePath(ctx, shape, true);
    if (preview) {
      ctx.fillStyle = "#000";
      ctx.fill();
    } else {
      ctx.stroke();
    }
  }
  if (masking.corners.length) {
    shapePath(ctx, masking.corners, false);
    ctx.stroke();
    for (const [x, y] of masking.corners) {
      ctx.fillStyle = "#ffbf47";
      ctx.fillRect(x * canvas.width - 3, y * canvas.height - 3, 6, 6);
    }
  }
  if (document.activeElement === canvas) {
    const [x, y] = [masking.pointer[0] * canvas.width, masking.pointer[1] * canvas.height];
    ctx.strokeStyle = "#0b57d0";
    ctx.beginPath();
    ctx.moveTo(x - 8, y);
    ctx.lineTo(x + 8, y);
    ctx.moveTo(x, y - 8);
    ctx.lineTo(x, y + 8);
    ctx.stroke();
  }
}

// The shapes in words, each with its button to remove it; the state line; the picture.
function showMasks() {
  maskElement("shapes").replaceChildren(...masking.shapes.map((shape, i) =>
    el("li", { "data-corners": shape.length },
      `Shape ${i + 1}: ${shape.length} corners, from ${percent(shape[0][0])} across, ` +
      `${percent(shape[0][1])} down`,
      el("button", { type: "button", class: "secondary", onclick: () => {
        masking.shapes.splice(i, 1);
        masking.saved = false;
        showMasks();
      } }, `Remove shape ${i + 1}`))));
  const [x, y] = masking.pointer;
  maskElement("state").textContent =
    `${masking.shapes.length} shape(s)${masking.saved ? ", as saved" : ", changes not saved yet"}. ` +
    `Shape being drawn: ${masking.corners.length} corner(s). ` +
    `Pointer at ${percent(x)} across, ${percent(y)} down.`;
  maskElement("save").textContent = `Save these masks for camera ${masking.camera}`;
  drawMasks();
}

function addCorner(x, y) {
  const clamp = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;
  masking.corners.push([clamp(x), clamp(y)]);
  masking.saved = false;
  showMasks();
}

function closeShape() {
  if (masking.corners.length < 3) {
    say("A shape needs three corners or more.");
    return;
  }
  masking.shapes.push(masking.corners);
  masking.corners = [];
  say(`Shape ${masking.shapes.length} closed.`);
  showMasks();
}

// The owner's own look: the raw still as an ImageBitmap (no URL: nothing is cached or kept).
async function ownLook(camera) {
  const answer = await fetch(API.look(camera), {
    method: "POST",
    headers: { "X-CSRF-Token": csrfToken || "" },
    credentials: "same-origin",
    redirect: "error",
  });
  if (!answer.ok) throw new ApiError(answer.status, await answer.json().catch(() => ({})));
  return createImageBitmap(await answer.blob());
}

async function takePicture() {
  const error = maskElement("error");
  error.textContent = "";
  const camera = maskElement("camera").value;
  const button = maskElement("look");
  button.disabled = true;
  try {
    const [picture, saved] = await Promise.all([ownLook(camera), api("GET", API.masks(camera))]);
    Object.assign(masking, { camera, picture, shapes: saved.polygons, corners: [], saved: true });
    maskElement("area").hidden = false;
    showMasks();
    say(`Picture of camera ${camera} taken; ${saved.polygons.length} saved shape(s) shown.`);
  } catch (failure) {
    error.textContent = problemText(failure);
  } finally {
    button.disabled = false;
  }
}

async function saveMasks() {
  const error = maskElement("error");
  error.textContent = "";
  if (masking.corners.length) closeShape();
  try {
    const saved = await api("PUT", API.masks(masking.camera), { polygons: masking.shapes });
    Object.assign(masking, { shapes: saved.polygons, saved: true });
    showMasks();
    say(`Masks saved for camera ${masking.camera}: ${saved.polygons.length} shape(s), ` +
      "blacked out in everything the police get from it.");
  } catch (failure) {
    error.textContent = problemText(failure);
  }
}

function maskKey(event) {
  const step = event.shiftKey ? MASK_BIG_STEP : MASK_STEP;
  const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  if (moves[event.key]) {
    const [dx, dy] = moves[event.key];
    const clamp = (v) => Math.min(1, Math.max(0, Math.round(v * 1000) / 1000));
    masking.pointer = [clamp(masking.pointer[0] + dx), clamp(masking.pointer[1] + dy)];
    showMasks();
  } else if (event.key === "Enter" || event.key === " ") {
    addCorner(...masking.pointer);
  } else {
    return;
  }
  event.preventDefault();
}

// Called by the portal once the session is loaded: the owner's cameras in the chooser.
async function initMasks() {
  const { cameras } = await api("GET", API.cameras);
  maskElement("camera").replaceChildren(...cameras.map((c) =>
    el("option", { value: c.id }, c.label ? `${c.id} (${c.label})` : c.id)));
  maskElement("look").disabled = !cameras.length;
  maskElement("camera").addEventListener("change", () => {
    maskElement("area").hidden = true;
    masking.picture = null;
  });
  maskElement("look").addEventListener("click", takePicture);
  const canvas = maskElement("canvas");
  canvas.addEventListener("click", (event) => {
    const box = canvas.getBoundingClientRect();
    addCorner((event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height);
  });
  canvas.addEventListener("keydown", maskKey);
  canvas.addEventListener("focus", drawMasks);
  canvas.addEventListener("blur", drawMasks);
  maskElement("close").addEventListener("click", closeShape);
  maskElement("undo").addEventListener("click", () => {
    masking.corners.pop();
    showMasks();
  });
  maskElement("preview").addEventListener("change", drawMasks);
  maskElement("clear").addEventListener("click", () => {
    Object.assign(masking, { shapes: [], corners: [], saved: false });
    showMasks();
  });
  maskElement("save").addEventListener("click", saveMasks);
}

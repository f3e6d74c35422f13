// Shared by the test pages: what the browser did with the video, into window.result.
window.result = null;
function report(video, error) {
  const q = video.getVideoPlaybackQuality();
  window.result = {
    error: error, ended: video.ended, width: video.videoWidth, height: video.videoHeight,
    currentTime: video.currentTime, totalVideoFrames: q.totalVideoFrames,
    droppedVideoFrames: q.droppedVideoFrames,
  };
}

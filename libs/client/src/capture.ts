/**
 * Local media from the browser, for RoomMedia to publish: the camera and the microphone
 * (getUserMedia; the camera within the room's userMediaConfiguration unless constraints are
 * given) and the screen (getDisplayMedia). Each resolves with the one track asked for.
 */
import { ProtocolError, type JoinReply } from '@switchboard/protocol';

/** The camera's constraints from joinR's userMediaConfiguration. */
export function videoConstraints(join: JoinReply): MediaTrackConstraints {
  const v = join.userMediaConfiguration.video;
  return {
    width: { max: v.width.max },
    height: { max: v.height.max },
    frameRate: {
      ...(v.frameRate.min === undefined ? {} : { min: v.frameRate.min }),
      ...(v.frameRate.max === undefined ? {} : { max: v.frameRate.max }),
    },
  };
}

export async function cameraTrack(constraints: MediaTrackConstraints): Promise<MediaStreamTrack> {
  const stream = await navigator.mediaDevices.getUserMedia({ video: constraints });
  const track = stream.getVideoTracks()[0];
  if (track === undefined) throw new ProtocolError('SYSTEM', 'getUserMedia gave no video track');
  return track;
}

export async function microphoneTrack(
  constraints: MediaTrackConstraints | true,
): Promise<MediaStreamTrack> {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: constraints });
  const track = stream.getAudioTracks()[0];
  if (track === undefined) throw new ProtocolError('SYSTEM', 'getUserMedia gave no audio track');
  return track;
}

export async function screenTrack(): Promise<MediaStreamTrack> {
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  const track = stream.getVideoTracks()[0];
  if (track === undefined) throw new ProtocolError('SYSTEM', 'getDisplayMedia gave no track');
  return track;
}

"""The call pipeline: the layers every operation passes, composed once at start-up.

    Observed → Governed → Metered → Router → provider (translation + transport)

Each layer serves `genroute.call.ModelAPI` (generate, stream, count_tokens, embed,
batch_embed) by wrapping the next one, and gives back whatever it took in a `finally`.
The proxy's HTTP edge and the SDK's `genroute.Client` both call a `Pipeline`; a new
cross-cutting feature (a response cache, guardrails) is one more layer here.
"""

from genroute.pipeline.build import Pipeline, build_pipeline
from genroute.pipeline.metering import Metered

__all__ = ["Metered", "Pipeline", "build_pipeline"]

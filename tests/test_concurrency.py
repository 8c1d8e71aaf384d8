"""One classifier serves every dashboard session, each from its own thread: answers must
not mix, and a large explanation batch must not corrupt a single-cell classification."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hematovision.io.images import read_image


def test_threads_sharing_one_classifier_get_their_own_answers(classifier, pbc_examples):
    images = [read_image(path) for path, _ in pbc_examples[::4]]
    alone = [classifier.predict([image])[0].probabilities for image in images]
    bulk_inputs = np.stack([classifier.prepare(image) for image in images] * 3)
    bulk_alone = classifier.predict_proba(bulk_inputs)

    def single(index: int):
        return index, classifier.predict([images[index]])[0].probabilities

    with ThreadPoolExecutor(max_workers=6) as pool:
        # LIME-sized batches run beside the single cells, as when one user explains a
        # cell while others classify.
        bulk = [pool.submit(classifier.predict_proba, bulk_inputs) for _ in range(2)]
        singles = [pool.submit(single, i % len(images)) for i in range(4 * len(images))]
        for future in singles:
            index, probabilities = future.result()
            np.testing.assert_allclose(probabilities, alone[index], atol=1e-6)
        for future in bulk:
            np.testing.assert_allclose(future.result(), bulk_alone, atol=1e-6)


def test_a_batch_s_one_blas_thread_is_lifted_when_the_last_batch_ends(classifier,
                                                                       pbc_examples):
    # Two batches overlap: the limit holds until both are done, then BLAS has its threads
    # back; the familiarity distances under it are the same to the bit.
    from threadpoolctl import threadpool_info

    from hematovision.model.runtime import one_blas_thread

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    features = classifier.analyse(np.stack(
        [classifier.prepare(read_image(path)) for path, _ in pbc_examples[:8]]))[2]
    before, distances = blas_threads(), classifier.distances(features)
    first, second = one_blas_thread(), one_blas_thread()
    first.__enter__()
    second.__enter__()
    assert set(blas_threads()) == {1}
    first.__exit__(None, None, None)
    assert set(blas_threads()) == {1}
    assert np.array_equal(classifier.distances(features), distances)
    second.__exit__(None, None, None)
    assert blas_threads() == before
